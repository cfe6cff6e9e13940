"""Removes an execution's files from its ComfyUI's folders once they are no longer needed.

What an execution leaves in ComfyUI's folders (its outputs and previews in `output/` and
`temp/`, reported or not, and its staged input images in `input/comfy-serverless/`) is
removed when the execution's attempt ends, whatever ends it, so that no tenant ever finds
another execution's files there:

- on this machine (a supervised child), the file is unlinked;
- on a remote ComfyUI, through the delete route of comfy-serverless's hooks
  (`engine/comfyui/extension`), when that ComfyUI has them; without the hooks, ComfyUI
  0.3.75 offers no way to delete a file, and the files stay (see docs/reference/security.md).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

from comfy_serverless.engine.comfyui.client import ComfyUIClient
from comfy_serverless.errors import EngineError
from comfy_serverless.inputs.staging import STAGED_SUBFOLDER
from comfy_serverless.worker.output_kinds import PROMPT_FOLDERS, EngineFile

__all__ = ["EngineFiles"]

log = logging.getLogger(__name__)

_REMOVABLE_FOLDERS = frozenset({*PROMPT_FOLDERS, "input"})


class EngineFiles:
    def __init__(self, client: ComfyUIClient, local_folders: dict[str, Path]) -> None:
        self._client = client
        self._local_folders = {kind: folder.resolve() for kind, folder in local_folders.items()
                               if kind in _REMOVABLE_FOLDERS}
        self._remote_hooks: bool | None = None

    async def remove_outputs(self, files: Iterable[EngineFile]) -> None:
        """Remove the files a prompt reported in output/ or temp/ (those already moved out
        are skipped); a file reported anywhere else stays."""
        for engine_file in files:
            if engine_file.folder_type in PROMPT_FOLDERS:
                await self._remove(engine_file.folder_type, engine_file.subfolder,
                                   engine_file.filename)

    async def remove_written(self, prompt_id: str) -> None:
        """Remove what the prompt wrote in output/ or temp/ without reporting it (a
        CheckpointSave, a dataset saver): the hooks list what appeared while it ran."""
        if not self._local_folders and not await self._remote_can_delete():
            return
        try:
            written = await self._client.written_files(prompt_id)
        except EngineError as exc:
            log.warning("cannot list what prompt %s wrote: %s", prompt_id, exc)
            return
        for folder_type, subfolder, filename in written:
            if folder_type in PROMPT_FOLDERS:
                await self._remove(folder_type, subfolder, filename)

    async def remove_staged_input(self, filename: str) -> None:
        """Remove one file that the worker uploaded into `input/comfy-serverless/`."""
        if "/" not in filename and "\\" not in filename:
            await self._remove("input", STAGED_SUBFOLDER, filename)

    async def _remove(self, folder_type: str, subfolder: str, filename: str) -> None:
        """Remove one file; a failure is logged, never raised (the outcome stands)."""
        if self._local_folders:
            self._unlink_local(folder_type, subfolder, filename)
        elif await self._remote_can_delete():
            try:
                await self._client.delete_file(folder_type, subfolder, filename)
            except EngineError as exc:
                log.warning("cannot delete %s/%s from ComfyUI: %s", subfolder, filename, exc)

    def _unlink_local(self, folder_type: str, subfolder: str, filename: str) -> None:
        folder = self._local_folders.get(folder_type)
        if folder is None:
            return
        path = (folder / subfolder / filename).resolve()
        if not path.is_relative_to(folder) or path == folder:
            return
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            log.warning("cannot delete %s from ComfyUI's %s folder: %s", path.name,
                        folder_type, exc)

    async def _remote_can_delete(self) -> bool:
        if self._remote_hooks is None:
            try:
                self._remote_hooks = await self._client.has_hooks()
            except EngineError:
                return False
            if not self._remote_hooks:
                log.warning("ComfyUI at %s has no comfy-serverless hooks: the files of "
                            "executions stay in its folders", self._client.base_url)
        return self._remote_hooks
