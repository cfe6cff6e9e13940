"""Before a prompt is submitted: the execution's staged input images, from storage into its
ComfyUI's input folder (POST /upload/image), under the names its workflow already uses."""

from __future__ import annotations

from pathlib import Path

from comfy_serverless.engine.comfyui.client import ComfyUIClient
from comfy_serverless.errors import EngineUnavailable, StorageError
from comfy_serverless.inputs.staging import STAGED_SUBFOLDER, StagedInput, discard_staged
from comfy_serverless.spool import SpoolFile
from comfy_serverless.storage.base import OutputStorage
from comfy_serverless.store.records import ExecutionRecord
from comfy_serverless.worker.engine_files import EngineFiles

__all__ = ["InputUploader"]


class InputUploader:
    def __init__(self, client: ComfyUIClient, storage: OutputStorage, spool_dir: Path,
                 engine_files: EngineFiles) -> None:
        self._client = client
        self._storage = storage
        self._spool_dir = spool_dir
        self._engine_files = engine_files

    async def upload(self, execution: ExecutionRecord) -> None:
        """Upload every staged input; StorageError when one is gone, EngineUnavailable when
        ComfyUI does not take it."""
        for item in execution.options.staged_inputs:
            await self._upload_one(StagedInput.from_stored(item))

    async def remove_from_engine(self, execution: ExecutionRecord) -> None:
        """Once an attempt ends, whatever ends it, its uploads leave ComfyUI's input folder
        (a retry uploads them again)."""
        for item in execution.options.staged_inputs:
            await self._engine_files.remove_staged_input(item.filename)

    async def discard(self, execution: ExecutionRecord) -> None:
        """Once the execution has its outcome, its staged copies are no longer needed."""
        await discard_staged(self._storage, execution)

    async def _upload_one(self, staged: StagedInput) -> None:
        try:
            spooled = SpoolFile(self._spool_dir).keep()
        except OSError as exc:
            raise StorageError(f"cannot spool {staged.filename}: {exc}") from exc
        try:
            await self._storage.fetch_to(staged.location, spooled)
            name = await self._client.upload_image(spooled, staged.filename, STAGED_SUBFOLDER)
        except OSError as exc:  # a backend that lets its disk errors through
            raise StorageError(f"cannot read {staged.filename}: {exc}") from exc
        finally:
            spooled.unlink(missing_ok=True)
        if name != staged.engine_value:
            raise EngineUnavailable(f"ComfyUI stored {staged.engine_value} as {name}")
