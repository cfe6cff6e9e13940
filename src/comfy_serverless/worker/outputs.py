"""Moves the files of a finished prompt from ComfyUI to storage, streamed, never whole in memory.

Each file is taken from ComfyUI's output folder (or streamed from /view), converted when
`output_config.format` asks for it (still images only, in a thread), and put where the
execution's resolved destination says, with its expiry when it has a retention. A file that
Pillow cannot decode (not an image, or one past its decompression-bomb limit) is stored as
ComfyUI wrote it, without dimensions.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from comfy_serverless.engine.comfyui.client import ComfyUIClient
from comfy_serverless.errors import EngineError, StorageError
from comfy_serverless.spool import SpoolFile
from comfy_serverless.storage.base import OutputStorage, delete_quietly, location_of
from comfy_serverless.storage.destinations import Destination
from comfy_serverless.store.records import ExecutionRecord, OutputRecord
from comfy_serverless.worker.conversion import ImageFormatting, convert_image
from comfy_serverless.worker.engine_files import EngineFiles
from comfy_serverless.worker.output_kinds import (
    EngineFile,
    EngineText,
    files_in_history,
    texts_in_history,
)

__all__ = ["OutputCollector"]

log = logging.getLogger(__name__)

# Files in these ComfyUI folders belong to the prompt and may be moved out; "input" may not.
_MOVABLE_FOLDERS = frozenset({"output", "temp"})
_DAY = 86_400.0


@dataclass(frozen=True)
class _Inspection:
    width: int | None
    height: int | None
    format: str | None


def _inspect(path: Path) -> _Inspection:
    try:
        with Image.open(path) as image:
            return _Inspection(image.width, image.height, image.format)
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError):
        suffix = path.suffix.lstrip(".").upper()
        return _Inspection(None, None, suffix or None)


@dataclass(frozen=True)
class _Plan:
    """What one execution asked for its files."""

    execution_id: str
    destination: Destination
    formatting: ImageFormatting

    def expires_at(self, now: float) -> float | None:
        days = self.destination.retention_days
        return now + days * _DAY if days else None


@dataclass(frozen=True)
class _Spooled:
    path: Path
    filename: str
    content_type: str
    subfolder: str = ""  # ComfyUI's, kept in the storage key


class OutputCollector:
    """Takes each file from ComfyUI into storage.

    When ComfyUI's output folders are on this machine (a supervised child), a file is
    moved straight out of them: no HTTP, no copy, and ComfyUI's folder does not grow.
    Otherwise it is streamed from /view into a spool file first. Either way, every file a
    prompt wrote is removed from ComfyUI's folders once its attempt is over.
    """

    def __init__(self, client: ComfyUIClient, storage: OutputStorage, spool_dir: Path,
                 local_folders: dict[str, Path] | None = None, *,
                 keep_workflow_metadata: bool = True) -> None:
        self._client = client
        self.engine_files = EngineFiles(client, local_folders or {})
        self._storage = storage
        self._spool_dir = spool_dir
        self._keep_metadata = keep_workflow_metadata
        self._local_folders = {
            kind: folder.resolve() for kind, folder in (local_folders or {}).items()
            if kind in _MOVABLE_FOLDERS
        }
        spool_dir.mkdir(parents=True, exist_ok=True)

    def _plan(self, execution: ExecutionRecord) -> _Plan:
        output = execution.options.output
        return _Plan(execution.id, Destination.from_stored(execution.id, output.storage),
                     ImageFormatting.from_output(output, keep_metadata=self._keep_metadata))

    async def collect(self, execution: ExecutionRecord, history_outputs: dict[str, object]
                      ) -> list[OutputRecord]:
        """Every file and text of a finished prompt's history, stored and described.
        StorageError when one cannot be spooled or stored; EngineError when ComfyUI does not
        hand one over."""
        plan = self._plan(execution)
        records: list[OutputRecord] = []
        try:
            for engine_file in files_in_history(history_outputs):
                records.append(await self._collect_file(plan, engine_file))
            for text in texts_in_history(history_outputs):
                records.append(await self._collect_text(plan, text))
        except (StorageError, EngineError, OSError) as exc:
            # No row will ever point at what was stored so far.
            await delete_quietly(self._storage, (location_of(r) for r in records), execution.id)
            if isinstance(exc, OSError):  # the worker's own spool folder
                raise StorageError(f"cannot spool an output: {exc}") from exc
            raise
        return records  # the executor empties ComfyUI's folders once the attempt ends

    async def _collect_file(self, plan: _Plan, engine_file: EngineFile) -> OutputRecord:
        path = self._local_file(engine_file) or await self._download(engine_file)
        spooled = _Spooled(path, engine_file.filename, engine_file.content_type,
                           engine_file.subfolder)
        inspection = _inspect(path)
        if (engine_file.output_type == "IMAGE" and not engine_file.intermediate
                and plan.formatting.may_convert(inspection.format)):
            formatted = await self._apply_format(plan.formatting, spooled)
            if formatted is not spooled:
                spooled, inspection = formatted, _inspect(formatted.path)
        return await self._store(plan, spooled, node_id=engine_file.node_id,
                                 output_type=engine_file.output_type,
                                 intermediate=engine_file.intermediate, inspection=inspection)

    async def _collect_text(self, plan: _Plan, text: EngineText) -> OutputRecord:
        filename = f"{text.output_type.lower()}_{text.node_id}_{text.index:04d}.txt"
        path = self._spool_bytes(text.text.encode())
        return await self._store(plan, _Spooled(path, filename, "text/plain; charset=utf-8"),
                                 node_id=text.node_id, output_type=text.output_type,
                                 intermediate=False)

    async def store_preview(self, execution: ExecutionRecord, node_id: str | None,
                            content_type: str, image: bytes, sequence: int) -> OutputRecord:
        """Keep a sampler preview as an intermediate output (`output_type` PREVIEW)."""
        extension = "png" if content_type == "image/png" else "jpg"
        filename = f"preview_{node_id or 'node'}_{sequence:04d}.{extension}"
        spooled = _Spooled(self._spool_bytes(image), filename, content_type)
        return await self._store(self._plan(execution), spooled, node_id=node_id or "",
                                 output_type="PREVIEW", intermediate=True)

    async def _store(self, plan: _Plan, spooled: _Spooled, *, node_id: str, output_type: str,
                     intermediate: bool, inspection: _Inspection | None = None
                     ) -> OutputRecord:
        """`inspection`: the file's, when the caller has read it already."""
        size = spooled.path.stat().st_size
        inspection = inspection or _inspect(spooled.path)
        location = plan.destination.location(spooled.filename, intermediate=intermediate,
                                             subfolder=spooled.subfolder)
        stored = await self._storage.put_file(location, spooled.path, spooled.content_type)
        now = time.time()
        return OutputRecord(
            id=f"out_{secrets.token_hex(8)}", execution_id=plan.execution_id, node_id=node_id,
            output_type=output_type, intermediate=intermediate, filename=spooled.filename,
            content_type=spooled.content_type, size_bytes=size, width=inspection.width,
            height=inspection.height, format=inspection.format,
            storage_provider=stored.provider, storage_bucket=stored.bucket,
            storage_key=stored.key, created_at=now, expires_at=plan.expires_at(now),
            public_access=stored.public)

    async def _apply_format(self, formatting: ImageFormatting, spooled: _Spooled) -> _Spooled:
        """The image in the asked format (in a thread); the original when nothing changes."""
        target = self._spool_dir / f"{secrets.token_hex(8)}{formatting.extension}"
        try:
            converted = await asyncio.to_thread(convert_image, spooled.path, target, formatting)
        except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
            log.warning("kept %s as it is: cannot convert it (%s)", spooled.filename, exc)
            target.unlink(missing_ok=True)
            return spooled
        if not converted:
            return spooled
        spooled.path.unlink(missing_ok=True)
        filename = Path(spooled.filename).stem + formatting.extension
        return _Spooled(target, filename, formatting.content_type, spooled.subfolder)

    def _spool_bytes(self, data: bytes) -> Path:
        with SpoolFile(self._spool_dir) as spool:
            spool.write(data)
        return spool.path

    def _local_file(self, engine_file: EngineFile) -> Path | None:
        folder = self._local_folders.get(engine_file.folder_type)
        if folder is None:
            return None
        candidate = (folder / engine_file.subfolder / engine_file.filename).resolve()
        if not candidate.is_relative_to(folder) or not candidate.is_file():
            return None
        return candidate

    async def _download(self, engine_file: EngineFile) -> Path:
        with SpoolFile(self._spool_dir) as spool:
            async with self._client.download(
                engine_file.filename, engine_file.subfolder, engine_file.folder_type
            ) as chunks:
                async for chunk in chunks:
                    spool.write(chunk)
        return spool.path
