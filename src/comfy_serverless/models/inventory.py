"""A worker's model folders, as its ComfyUI sees them (`/experiment/models`), with each
file's sha256 and capabilities computed lazily, in a thread, and cached by (path, size,
mtime) in a small JSON file, so a restart does not hash the same gigabytes again."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from pathlib import Path
from typing import Any

from comfy_serverless.engine.comfyui.client import ComfyUIClient
from comfy_serverless.models.inspection import capabilities_of, file_sha256
from comfy_serverless.store.models import ModelFile

__all__ = ["ModelInventory"]

log = logging.getLogger(__name__)


def _facts_key(path: Path, size: int, mtime: float) -> str:
    return f"{path}|{size}|{mtime}"


def _describe(path: Path) -> dict[str, Any]:
    return {"sha256": file_sha256(path), "capabilities": _capabilities(path)}


def _capabilities(path: Path) -> dict[str, Any] | None:
    """None (no capabilities) when the header is JSON of an unexpected shape."""
    try:
        return capabilities_of(path)
    except (AttributeError, TypeError, ValueError) as exc:
        log.warning("model file %s has a malformed header: %s", path, exc)
        return None


class ModelInventory:
    def __init__(self, client: ComfyUIClient, facts_file: Path | None = None) -> None:
        self._client = client
        self._facts_file = facts_file
        self._facts: dict[str, dict[str, Any]] = self._load_facts()
        self._paths: dict[tuple[str, str], Path] = {}
        self.files: list[ModelFile] = []

    async def scan(self) -> list[ModelFile]:
        """Read the model folders from ComfyUI; known facts are filled from the cache."""
        files, paths = [], {}
        for folder in await self._client.model_folders():
            name, roots = str(folder.get("name")), list(folder.get("folders") or [])
            for item in await self._client.model_files(name):
                index, filename = int(item.get("pathIndex") or 0), item.get("name")
                if not isinstance(filename, str) or index >= len(roots):
                    continue
                path = Path(roots[index]) / filename
                size, mtime = int(item.get("size") or 0), float(item.get("modified") or 0)
                facts = self._facts.get(_facts_key(path, size, mtime), {})
                files.append(ModelFile(name, filename, size, mtime,
                                       facts.get("sha256"), facts.get("capabilities")))
                paths[(name, filename)] = path
        self.files, self._paths = files, paths
        return files

    def holds(self, folder: str, filename: str) -> bool:
        return (folder, filename) in self._paths

    async def describe_next(self) -> bool:
        """Hash one file that has no facts yet (and is on this machine); False when none is
        left. The hashing runs in a thread: the event loop never waits for the disk."""
        for index, file in enumerate(self.files):
            path = self._paths[(file.folder, file.filename)]
            if file.sha256 is not None or not path.is_file():
                continue
            try:
                facts = await asyncio.to_thread(_describe, path)
            except OSError as exc:
                log.warning("cannot read model file %s: %s", path, exc)
                continue
            self._facts[_facts_key(path, file.size_bytes, file.mtime)] = facts
            self.files[index] = ModelFile(file.folder, file.filename, file.size_bytes,
                                          file.mtime, facts["sha256"], facts["capabilities"])
            try:
                await asyncio.to_thread(self._save_facts)
            except OSError as exc:
                log.warning("cannot save model facts to %s: %s", self._facts_file, exc)
            return True
        return False

    def _load_facts(self) -> dict[str, dict[str, Any]]:
        if self._facts_file is None or not self._facts_file.is_file():
            return {}
        with contextlib.suppress(OSError, ValueError):
            facts = json.loads(self._facts_file.read_text())
            if isinstance(facts, dict):
                return facts
        return {}

    def _save_facts(self) -> None:
        if self._facts_file is None:
            return
        self._facts_file.parent.mkdir(parents=True, exist_ok=True)
        partial = self._facts_file.with_suffix(".partial")
        partial.write_text(json.dumps(self._facts))
        partial.replace(self._facts_file)
