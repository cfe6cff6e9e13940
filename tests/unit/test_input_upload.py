"""Staged inputs on their way to ComfyUI: a storage that cannot give one back is a
StorageError (the executor's INPUT_UNAVAILABLE), whatever the backend raised."""

from __future__ import annotations

from pathlib import Path

import pytest

from comfy_serverless.engine.comfyui.client import ComfyUIClient
from comfy_serverless.errors import StorageError
from comfy_serverless.storage.base import StoredLocation
from comfy_serverless.storage.local import LocalStorage
from comfy_serverless.storage.signing import UrlSigner
from comfy_serverless.store.options import ExecutionOptions, StagedInputOptions
from comfy_serverless.worker.engine_files import EngineFiles
from comfy_serverless.worker.input_upload import InputUploader
from tests.helpers import processing_execution


class _RawDisk(LocalStorage):
    """A backend that lets its disk errors through untranslated."""

    async def fetch_to(self, location: StoredLocation, target: Path) -> None:
        raise PermissionError(13, "Permission denied", location.key)


STAGED = ExecutionOptions(staged_inputs=(StagedInputOptions(
    "1", "image", "cat.png", "local", None, "outputs/exec_1/inputs/cat.png"),))


@pytest.mark.parametrize("storage_class", [LocalStorage, _RawDisk])
async def test_an_input_storage_cannot_give_back_is_a_storage_error(
    tmp_path: Path, storage_class: type[LocalStorage]
) -> None:
    storage = storage_class(tmp_path / "storage", UrlSigner("s"))
    client = ComfyUIClient("http://127.0.0.1:9")
    uploader = InputUploader(client, storage, tmp_path / "spool", EngineFiles(client, {}))
    (tmp_path / "spool").mkdir()
    with pytest.raises(StorageError, match=r"cat\.png"):
        await uploader.upload(processing_execution("exec_1", STAGED))
    assert list((tmp_path / "spool").iterdir()) == [], "the spool file is removed"


async def test_an_attempts_uploads_leave_the_engines_input_folder(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "storage", UrlSigner("s"))
    client = ComfyUIClient("http://127.0.0.1:9")
    input_folder = tmp_path / "comfyui" / "input"
    uploader = InputUploader(client, storage, tmp_path / "spool",
                             EngineFiles(client, {"input": input_folder}))
    uploaded = input_folder / "comfy-serverless" / "cat.png"
    published = input_folder / "shared.png"
    for path in (uploaded, published):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"png")
    await uploader.remove_from_engine(processing_execution("exec_1", STAGED))
    assert not uploaded.exists()
    assert published.exists(), "the operator's shared inputs stay"
