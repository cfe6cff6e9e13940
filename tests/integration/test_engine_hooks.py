"""comfy-serverless's hooks inside a real ComfyUI: a worker that reads a remote ComfyUI's
files over HTTP deletes them through the hooks, and nothing outside ComfyUI's folders."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from comfy_serverless.engine.comfyui.client import ComfyUIClient
from comfy_serverless.errors import EngineUnavailable
from comfy_serverless.testing import LocalService
from comfy_serverless.worker.engine_files import EngineFiles

pytestmark = pytest.mark.comfyui


@pytest.fixture
async def comfyui(service: LocalService) -> AsyncIterator[ComfyUIClient]:
    client = ComfyUIClient(service.comfyui_url)
    try:
        yield client
    finally:
        await client.close()


async def test_a_remote_engines_files_are_deleted_through_the_hooks(
    comfyui: ComfyUIClient, service: LocalService, tmp_path: Path
) -> None:
    assert await comfyui.has_hooks()
    source = tmp_path / "upload.png"
    source.write_bytes(b"\x89PNG\r\n\x1a\n")
    name = await comfyui.upload_image(source, "hooks-test.png", "comfy-serverless")
    uploaded = service.data_dir / "comfyui" / "input" / name
    assert uploaded.is_file()

    remote = EngineFiles(comfyui, {})  # no local folders: the way to a remote ComfyUI
    await remote.remove("input", "comfy-serverless", "hooks-test.png")
    assert not uploaded.exists()


async def test_the_delete_route_refuses_paths_outside_comfyuis_folders(
    comfyui: ComfyUIClient, service: LocalService
) -> None:
    database = service.data_dir / "comfyui" / "comfyui.db"
    assert database.is_file()
    for subfolder, filename in (("..", "comfyui.db"), ("", "../comfyui.db"),
                                ("", str(database)), ("", "")):
        with pytest.raises(EngineUnavailable, match="400"):
            await comfyui.delete_file("output", subfolder, filename)
    with pytest.raises(EngineUnavailable, match="400"):
        await comfyui.delete_file("models", "", "x.safetensors")
    assert database.is_file()
