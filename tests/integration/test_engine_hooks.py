"""comfy-serverless's hooks inside a real ComfyUI: a worker that reads a remote ComfyUI's
files over HTTP deletes them through the hooks, and nothing outside ComfyUI's folders."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from comfy_serverless.engine.comfyui.client import ComfyUIClient
from comfy_serverless.errors import EngineUnavailable
from comfy_serverless.testing import LocalService
from comfy_serverless.worker.engine_files import EngineFiles, file_identity

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
    await remote.remove_staged_input("hooks-test.png")
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


async def test_the_delete_route_answers_400_to_any_malformed_request(
    service: LocalService
) -> None:
    """A folder, a body that is not an object of strings, a NUL: 400, never a 500."""
    (service.data_dir / "comfyui" / "output" / "a-folder").mkdir(exist_ok=True)
    bodies: list[object] = [
        {"type": "output", "subfolder": "", "filename": "a-folder"},
        ["output", "", "x.png"], "output", 7, None,
        {"type": "output", "subfolder": "", "filename": "x\x00.png"},
        {"type": "output", "subfolder": ["a"], "filename": "x.png"},
        {"type": {"a": 1}, "subfolder": "", "filename": "x.png"},
        {"type": "output", "subfolder": "", "filename": "x.png", "identity": 7},
    ]
    async with httpx.AsyncClient(base_url=service.comfyui_url) as http:
        for body in bodies:
            response = await http.post("/comfy-serverless/delete", json=body)
            assert response.status_code == 400, (body, response.text)
        response = await http.post("/comfy-serverless/delete", content=b"{not json")
        assert response.status_code == 400
    assert (service.data_dir / "comfyui" / "output" / "a-folder").is_dir()


async def test_the_delete_route_leaves_a_later_file_of_the_same_name(
    comfyui: ComfyUIClient, service: LocalService
) -> None:
    """A worker over HTTP removes the file its prompt wrote, never the next prompt's file
    that ComfyUI numbered with the same name once the first was gone."""
    path = service.data_dir / "comfyui" / "output" / "hooks-identity_00001_.png"
    path.write_bytes(b"first")
    first = file_identity(path)
    moved_out = path.rename(path.with_name("hooks-identity-stored.png"))  # collected
    path.write_bytes(b"second")
    assert first is not None
    assert file_identity(path) != first
    await comfyui.delete_file("output", "", path.name, first)
    assert path.read_bytes() == b"second"
    await comfyui.delete_file("output", "", path.name, file_identity(path))
    assert not path.exists()
    moved_out.unlink()


async def test_the_delete_route_never_deletes_the_operators_inputs(
    comfyui: ComfyUIClient, service: LocalService, tmp_path: Path
) -> None:
    """Only output/, temp/ and the worker's own input/comfy-serverless/ are deletable."""
    published = service.data_dir / "comfyui" / "input" / "hooks-published.png"
    published.write_bytes(b"\x89PNG\r\n\x1a\n")
    try:
        for subfolder, filename in (("", "hooks-published.png"),
                                    ("comfy-serverless", "../hooks-published.png")):
            with pytest.raises(EngineUnavailable, match="400"):
                await comfyui.delete_file("input", subfolder, filename)
        assert published.is_file()
    finally:
        published.unlink(missing_ok=True)


async def test_the_hooks_report_comfyuis_pid_and_its_gpus_identity(
    comfyui: ComfyUIClient
) -> None:
    """The worker's NVML finds ComfyUI's GPU by this identity (none on the CPU)."""
    info = await comfyui.hooks()
    assert info is not None
    assert isinstance(info["pid"], int)
    assert info["pid"] > 0
    assert info["device"] == {}
