"""A worker's model folders, as its ComfyUI sees them (`/experiment/models`), with each
file's sha256 and capabilities computed lazily, in a thread, and cached by (path, size,
mtime) in a small JSON file, so a restart does not hash the same gigabytes again.

A file placed from the worker's model cache (a link into it) is known without hashing:
`placed` (handed in by the worker, which owns the cache) gives its sha256 and the sources
it was fetched from.

`on_disk` is what a claim's disk affinity matches a job's required models against: the
files placed from the model cache only, each by its placed name, `sha256:<hex>` and
`source:<key>` of each of its sources (a job that names a source requires those, see
executions/model_requests.py), at most the DISK_AFFINITY_FILES most recently used (the
cache touches a file's mtime at every use; a link reports its file's). The claim sends it
with every poll, so it must stay small: the cache's size budget bounds it, the cap bounds
it whatever the budget. Files an operator put in the folders are not sent: every worker has
some, so each claim would take the slower affinity query (store/claims.py), and a job that
uses one gets affinity from a worker where it is warm. Computed once per scan."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from comfy_serverless.engine.comfyui.client import ComfyUIClient
from comfy_serverless.models.inspection import capabilities_of, file_sha256
from comfy_serverless.store.models import FileSource, ModelFile

__all__ = ["DISK_AFFINITY_FILES", "ModelInventory", "PlacedLookup", "disk_affinity",
           "placed_tokens"]

# How many placed files (the most recently used) a claim names for its disk affinity.
DISK_AFFINITY_FILES = 256

# For a file of a model folder: (sha256, sources) when it was placed from the model cache.
PlacedLookup = Callable[[Path], "tuple[str, tuple[FileSource, ...]] | None"]


def placed_tokens(file: ModelFile) -> set[str]:
    """What a job's required models name a placed file by: its content and its sources."""
    if not file.sources or file.sha256 is None:
        return set()
    return {f"sha256:{file.sha256}",
            *(f"source:{source.key}" for source in file.sources if source.key)}


def disk_affinity(files: Iterable[ModelFile]) -> frozenset[str]:
    """The names and tokens of the DISK_AFFINITY_FILES most recently used placed files."""
    placed = sorted((file for file in files if file.sources),
                    key=lambda file: file.mtime, reverse=True)[:DISK_AFFINITY_FILES]
    return frozenset({file.filename for file in placed}.union(
        *(placed_tokens(file) for file in placed)))

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
    def __init__(self, client: ComfyUIClient, facts_file: Path | None = None,
                 placed: PlacedLookup | None = None) -> None:
        self._client = client
        self._facts_file = facts_file
        self._placed = placed
        self._facts: dict[str, dict[str, Any]] = self._load_facts()
        self._paths: dict[tuple[str, str], Path] = {}
        self.files: list[ModelFile] = []
        self._on_disk: frozenset[str] = frozenset()

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
                files.append(await self._file(name, filename, path, size, mtime))
                paths[(name, filename)] = path
        self.files, self._paths = files, paths
        self._on_disk = disk_affinity(files)
        return files

    async def _file(self, folder: str, filename: str, path: Path, size: int, mtime: float
                    ) -> ModelFile:
        """One file with what is known of it; a placed file's facts at once (its header is
        read in a thread: no hashing, the cache knows its sha256)."""
        facts = self._facts.get(_facts_key(path, size, mtime), {})
        placed = self._placed(path) if self._placed is not None else None
        if placed is None:
            return ModelFile(folder, filename, size, mtime, facts.get("sha256"),
                             facts.get("capabilities"))
        sha256, sources = placed
        if "capabilities" not in facts:
            facts = {"sha256": sha256, "capabilities": await asyncio.to_thread(
                _capabilities, path)}
            self._facts[_facts_key(path, size, mtime)] = facts
        return ModelFile(folder, filename, size, mtime, sha256, facts["capabilities"], sources)

    def holds(self, folder: str, filename: str) -> bool:
        return (folder, filename) in self._paths

    def on_disk(self) -> frozenset[str]:
        """The placed files' names and tokens a claim's disk affinity names (as of the last
        scan; describing a file changes none of them: placed files are never hashed)."""
        return self._on_disk

    def tokens_of(self, filenames: Iterable[str]) -> frozenset[str]:
        """The tokens of the placed files among `filenames` (the warm ones, say)."""
        wanted = set(filenames)
        return frozenset().union(*(placed_tokens(file) for file in self.files
                                   if file.filename in wanted))

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
