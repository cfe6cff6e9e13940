"""Removes an execution's files from its ComfyUI's folders once they are no longer needed.

What an execution leaves in ComfyUI's folders (its outputs and previews in `output/` and
`temp/`, reported or not, and its staged input images in `input/comfy-serverless/`) is
removed when the execution's attempt ends, whatever ends it, so that no tenant ever finds
another execution's files there. The outputs and previews removed are those the hooks saw
the prompt write, each by its identity: once a file is gone ComfyUI numbers the next
prompt's file of the same prefix with its name, and that file is not this prompt's.

- on this machine (a supervised child), the file is unlinked;
- on a remote ComfyUI, through the delete route of comfy-serverless's hooks
  (`engine/comfyui/extension`), when that ComfyUI has them; without the hooks, ComfyUI
  0.3.75 offers no way to delete a file, and the files stay (see docs/reference/security.md).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

from comfy_serverless.engine.comfyui.client import ComfyUIClient, WrittenFile
from comfy_serverless.errors import EngineError
from comfy_serverless.inputs.staging import STAGED_SUBFOLDER
from comfy_serverless.worker.output_kinds import PROMPT_FOLDERS, EngineFile

__all__ = ["EngineFiles", "file_identity"]

log = logging.getLogger(__name__)

_REMOVABLE_FOLDERS = frozenset({*PROMPT_FOLDERS, "input"})


class EngineFiles:
    def __init__(self, client: ComfyUIClient, local_folders: dict[str, Path]) -> None:
        self._client = client
        self._local_folders = {kind: folder.resolve() for kind, folder in local_folders.items()
                               if kind in _REMOVABLE_FOLDERS}
        self._remote_hooks: bool | None = None

    def identify(self, files: Iterable[EngineFile]) -> list[WrittenFile]:
        """The identity of each reported file of output/ or temp/ on this machine, taken
        when its node reports it: removed later by that identity, it is removed even when
        the hooks cannot list the prompt's files (an interrupted prompt still running, hooks
        that did not load), and never a later prompt's file of its name. A ComfyUI on
        another machine: none (only its hooks know)."""
        identified = []
        for engine_file in files:
            folder = self._local_folders.get(engine_file.folder_type)
            if folder is None or engine_file.folder_type not in PROMPT_FOLDERS:
                continue
            identity = file_identity(folder / engine_file.subfolder / engine_file.filename)
            if identity is not None:
                identified.append(WrittenFile(engine_file.folder_type, engine_file.subfolder,
                                              engine_file.filename, identity))
        return identified

    async def remove_written(self, prompt_id: str, reported: Iterable[WrittenFile] = ()
                             ) -> None:
        """Remove what the prompt wrote in output/ or temp/: what the hooks saw appear while
        it ran, reported or not (a CheckpointSave, a dataset saver), and the `reported`
        files identified as they came. What a local collection moved out already is gone;
        a later file of its name stays."""
        reported = list(reported)
        if not self._local_folders and not await self._remote_can_delete():
            return
        try:
            written = await self._client.written_files(prompt_id)
        except EngineError as exc:
            log.warning("cannot list what prompt %s wrote: %s", prompt_id, exc)
            written = []
        await self.remove(dict.fromkeys([*written, *reported]))

    async def remove(self, files: Iterable[WrittenFile]) -> None:
        """Remove each file of output/ or temp/ that is still the very file written (a
        file anywhere else stays)."""
        for written in files:
            if written.folder_type in PROMPT_FOLDERS:
                await self._remove(written.folder_type, written.subfolder, written.filename,
                                   written.identity)

    async def remove_staged_input(self, filename: str) -> None:
        """Remove one file that the worker uploaded into `input/comfy-serverless/`."""
        if "/" not in filename and "\\" not in filename:
            await self._remove("input", STAGED_SUBFOLDER, filename)

    async def _remove(self, folder_type: str, subfolder: str, filename: str,
                      identity: str | None = None) -> None:
        """Remove one file (with an `identity`, only that very file); a failure is logged,
        never raised (the outcome stands)."""
        if self._local_folders:
            self._unlink_local(folder_type, subfolder, filename, identity)
        elif await self._remote_can_delete():
            try:
                await self._client.delete_file(folder_type, subfolder, filename, identity)
            except EngineError as exc:
                log.warning("cannot delete %s/%s from ComfyUI: %s", subfolder, filename, exc)

    def _unlink_local(self, folder_type: str, subfolder: str, filename: str,
                      identity: str | None) -> None:
        folder = self._local_folders.get(folder_type)
        if folder is None:
            return
        path = (folder / subfolder / filename).resolve()
        if not path.is_relative_to(folder) or path == folder:
            return
        try:
            if identity is not None and file_identity(path) != identity:
                return  # moved out already, and the name written again by a later prompt
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


def file_identity(path: Path) -> str | None:
    """A file's identity as the hooks write it (inode and modification time); None when
    there is no such file."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return f"{stat.st_ino}:{stat.st_mtime_ns}"
