"""Moves the files of a finished prompt from ComfyUI to storage, streamed, never whole in memory."""

from __future__ import annotations

import mimetypes
import secrets
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from comfy_serverless.engine.comfyui.client import ComfyUIClient
from comfy_serverless.storage.base import OutputStorage
from comfy_serverless.store.records import OutputRecord

__all__ = ["EngineFile", "OutputCollector", "files_in_history"]

# ComfyUI's output keys, and the output_type each one is reported with.
_OUTPUT_TYPES = {"images": "IMAGE", "gifs": "VIDEO", "video": "VIDEO", "audio": "AUDIO"}
# Files in these ComfyUI folders belong to the prompt and may be moved out; "input" may not.
_MOVABLE_FOLDERS = frozenset({"output", "temp"})


@dataclass(frozen=True)
class EngineFile:
    node_id: str
    output_type: str
    filename: str
    subfolder: str
    folder_type: str

    @property
    def intermediate(self) -> bool:
        return self.folder_type != "output"


def files_in_history(outputs: dict[str, Any]) -> Iterator[EngineFile]:
    """Every file that a prompt's history lists, in node order."""
    for node_id, node_output in outputs.items():
        if not isinstance(node_output, dict):
            continue
        for key, items in node_output.items():
            if not isinstance(items, list):
                continue
            for item in items:
                if isinstance(item, dict) and isinstance(item.get("filename"), str):
                    yield EngineFile(
                        node_id=str(node_id),
                        output_type=_OUTPUT_TYPES.get(key, key.upper()),
                        filename=item["filename"],
                        subfolder=str(item.get("subfolder") or ""),
                        folder_type=str(item.get("type") or "output"),
                    )


@dataclass(frozen=True)
class _Inspection:
    width: int | None
    height: int | None
    format: str | None


def _inspect(path: Path) -> _Inspection:
    try:
        with Image.open(path) as image:
            return _Inspection(image.width, image.height, image.format)
    except (UnidentifiedImageError, OSError):
        suffix = path.suffix.lstrip(".").upper()
        return _Inspection(None, None, suffix or None)


class OutputCollector:
    """Takes each file from ComfyUI into storage.

    When ComfyUI's output folders are on this machine (a supervised child), a file is
    moved straight out of them: no HTTP, no copy, and ComfyUI's folder does not grow.
    Otherwise it is streamed from /view into a spool file first.
    """

    def __init__(self, client: ComfyUIClient, storage: OutputStorage, spool_dir: Path,
                 local_folders: dict[str, Path] | None = None) -> None:
        self._client = client
        self._storage = storage
        self._spool_dir = spool_dir
        self._local_folders = {
            kind: folder.resolve() for kind, folder in (local_folders or {}).items()
            if kind in _MOVABLE_FOLDERS
        }
        spool_dir.mkdir(parents=True, exist_ok=True)

    async def collect(self, execution_id: str, files: list[EngineFile]) -> list[OutputRecord]:
        return [await self._collect_one(execution_id, engine_file) for engine_file in files]

    async def _collect_one(self, execution_id: str, engine_file: EngineFile) -> OutputRecord:
        spooled = self._local_file(engine_file) or await self._download(engine_file)
        size = spooled.stat().st_size
        inspection = _inspect(spooled)
        content_type = mimetypes.guess_type(engine_file.filename)[0] or "application/octet-stream"
        folder = "intermediate" if engine_file.intermediate else "outputs"
        key = f"{folder}/{execution_id}/{engine_file.filename}"
        location = await self._storage.put_file(key, spooled, content_type)
        return OutputRecord(
            id=f"out_{secrets.token_hex(8)}",
            execution_id=execution_id,
            node_id=engine_file.node_id,
            output_type=engine_file.output_type,
            intermediate=engine_file.intermediate,
            filename=engine_file.filename,
            content_type=content_type,
            size_bytes=size,
            width=inspection.width,
            height=inspection.height,
            format=inspection.format,
            storage_provider=location.provider,
            storage_bucket=location.bucket,
            storage_key=location.key,
            created_at=time.time(),
        )

    async def store_preview(self, execution_id: str, node_id: str | None, content_type: str,
                            image: bytes, sequence: int) -> OutputRecord:
        """Keep a sampler preview as an intermediate output (`output_type` PREVIEW)."""
        extension = "png" if content_type == "image/png" else "jpg"
        filename = f"preview_{node_id or 'node'}_{sequence:04d}.{extension}"
        handle = tempfile.NamedTemporaryFile(dir=self._spool_dir, delete=False)  # noqa: SIM115
        with handle:
            handle.write(image)
        spooled = Path(handle.name)
        inspection = _inspect(spooled)
        key = f"intermediate/{execution_id}/{filename}"
        location = await self._storage.put_file(key, spooled, content_type)
        return OutputRecord(
            id=f"out_{secrets.token_hex(8)}", execution_id=execution_id,
            node_id=node_id or "", output_type="PREVIEW", intermediate=True, filename=filename,
            content_type=content_type, size_bytes=len(image), width=inspection.width,
            height=inspection.height, format=inspection.format,
            storage_provider=location.provider, storage_bucket=location.bucket,
            storage_key=location.key, created_at=time.time())

    def _local_file(self, engine_file: EngineFile) -> Path | None:
        folder = self._local_folders.get(engine_file.folder_type)
        if folder is None:
            return None
        candidate = (folder / engine_file.subfolder / engine_file.filename).resolve()
        if not candidate.is_relative_to(folder) or not candidate.is_file():
            return None
        return candidate

    async def _download(self, engine_file: EngineFile) -> Path:
        handle = tempfile.NamedTemporaryFile(dir=self._spool_dir, delete=False)  # noqa: SIM115
        path = Path(handle.name)
        try:
            with handle:
                async with self._client.download(
                    engine_file.filename, engine_file.subfolder, engine_file.folder_type
                ) as chunks:
                    async for chunk in chunks:
                        handle.write(chunk)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return path
