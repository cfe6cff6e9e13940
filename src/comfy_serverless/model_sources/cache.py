"""The model cache of one machine: a source is downloaded once, verified, kept by content,
and evicted least-recently-used within a size budget, never while in use.

- Single flight: in one process, concurrent `fetch`es of one source share one download
  (and each gets its progress); across processes, a file lock per source makes the later
  ones wait and then find the file in the cache.
- Origins: the sources each file was read from (origins.py), which decide who may see it.
  A source counts as cached only when it was read before (CacheLayout.recall): a pinned
  source whose content the cache holds from another source is downloaded and verified
  once, never vouched for by its pin alone.
- Verification: a pinned sha256 must match, and with `require_model_hashes` the hash must
  be in the operator's allowlist (also for a file already cached). A mismatch leaves no
  file: the partial download is removed before `HashMismatch` is raised, as after any
  failure that a later try could not resume (see `_resumable`).
- Pins: `use` yields a file held against eviction for the block; `pin` holds a file by its
  sha256 (a claimed job, an active preload). Pins are file locks, so they hold across the
  machine's processes and vanish with a process that dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from comfy_serverless.model_sources.errors import (
    DownloadFailed,
    HashMismatch,
    HashNotAllowed,
    ModelSourceError,
    ModelUnavailable,
)
from comfy_serverless.model_sources.layout import CacheLayout
from comfy_serverless.model_sources.locks import exclusive
from comfy_serverless.model_sources.origins import (
    Origin,
    add_origin,
    origins_for_link,
    placed_blob,
)
from comfy_serverless.model_sources.partial import PartialFile
from comfy_serverless.model_sources.policy import SourcePolicy, check_source
from comfy_serverless.model_sources.sources import ModelSource
from comfy_serverless.model_sources.transfer import Progress, Transport, transfer

__all__ = ["CachedModel", "ModelCache"]

logger = logging.getLogger(__name__)
_USE_ATTEMPTS = 3
_FlightKey = tuple[str, str | None, SourcePolicy]


@dataclass(frozen=True)
class CachedModel:
    sha256: str
    path: Path
    size: int
    basename: str


@dataclass
class _Flight:
    """One download in progress and everyone waiting on it."""

    listeners: list[Progress] = field(default_factory=list)
    task: asyncio.Task[CachedModel] | None = None

    def report(self, done: int, total: int | None) -> None:
        for listener in list(self.listeners):
            listener(done, total)


class ModelCache:
    def __init__(self, root: Path, *, max_bytes: int, transport: Transport) -> None:
        self.layout = CacheLayout(root)
        self.max_bytes = max_bytes
        self.transport = transport
        self._flights: dict[_FlightKey, _Flight] = {}

    async def fetch(self, source: ModelSource, policy: SourcePolicy,
                    progress: Progress | None = None) -> CachedModel:
        """The cached file for `source`, downloading it (once) when the cache lacks it.
        Policy is checked before anything else, and the SSRF check before a connection."""
        policy.check_host(source)
        if source.sha256 is not None:
            policy.check_hash(source.sha256)
        cached = self._cached(source, policy)
        if cached is None:
            cached = await self._fetched(source, policy, progress)
        try:  # a hit is a file read from this very source too (CacheLayout.recall)
            await add_origin(self.layout.root, cached.sha256, source, self.layout.key(source))
        except OSError as exc:  # the file is good; only who may see it is not recorded
            logger.warning("cannot record the source of %s: %s", cached.sha256, exc)
        return cached

    async def _fetched(self, source: ModelSource, policy: SourcePolicy,
                       progress: Progress | None) -> CachedModel:
        flight = self._join(source, policy)
        if progress is not None:
            flight.listeners.append(progress)
        assert flight.task is not None
        try:
            return await asyncio.shield(flight.task)
        finally:
            if progress is not None:  # a waiter that leaves hears no more
                flight.listeners.remove(progress)

    def placed(self, link: Path) -> tuple[str, tuple[Origin, ...]] | None:
        """For a file of a model folder placed from this cache: the sha256 of its content
        and the sources it was fetched from under its file name; None for any other file."""
        sha256 = placed_blob(link, self.layout.root)
        return None if sha256 is None else (
            sha256, origins_for_link(self.layout.root, sha256, link))

    @contextlib.asynccontextmanager
    async def use(self, source: ModelSource, policy: SourcePolicy,
                  progress: Progress | None = None) -> AsyncIterator[CachedModel]:
        """Fetch `source` and hold it against eviction for the block."""
        for _ in range(_USE_ATTEMPTS):
            model = await self.fetch(source, policy, progress)
            with self.pin(model.sha256):
                if model.path.exists():  # not evicted between the fetch and the pin
                    yield model
                    return
        raise DownloadFailed(f"{source.display} was evicted each time it was fetched")

    @contextlib.contextmanager
    def pin(self, sha256: str) -> Iterator[None]:
        """Hold the cached file `sha256` against eviction (by any process) for the block."""
        descriptor = self.layout.pin(sha256)
        try:
            yield
        finally:
            os.close(descriptor)

    def place(self, model: CachedModel, folder: Path) -> str:
        """Make `model` visible in a ComfyUI model folder; the name a loader input takes."""
        return self.layout.place(model.sha256, model.basename, folder).name

    def _cached(self, source: ModelSource, policy: SourcePolicy) -> CachedModel | None:
        sha256 = self.layout.recall(source)
        if sha256 is None:
            return None
        policy.check_hash(sha256)
        blob = self.layout.blob(sha256)
        try:
            self.layout.touch(sha256)
            size = blob.stat().st_size
        except FileNotFoundError:  # evicted by another process since `recall`: a miss
            return None
        return CachedModel(sha256, blob, size, source.basename)

    def _join(self, source: ModelSource, policy: SourcePolicy) -> _Flight:
        """The flight that downloads `source` under `policy`: fetches of one source with
        one pin (or none) and one policy share it; others queue on the source's lock."""
        key = (source.identity, source.sha256, policy)
        flight = self._flights.get(key)
        if flight is None:
            flight = _Flight()
            flight.task = asyncio.create_task(self._download(source, policy, flight.report))
            self._flights[key] = flight
            flight.task.add_done_callback(lambda task: self._landed(key, task))
        return flight

    def _landed(self, key: _FlightKey, task: asyncio.Task[CachedModel]) -> None:
        self._flights.pop(key, None)
        if not task.cancelled():
            task.exception()  # retrieved here too, for a flight whose waiters all left

    async def _download(self, source: ModelSource, policy: SourcePolicy,
                        progress: Progress) -> CachedModel:
        async with exclusive(self.layout.download_lock(source)):
            cached = self._cached(source, policy)  # another process may have finished it
            if cached is not None:
                return cached
            checked = await check_source(source, policy)
            partial = PartialFile(self.layout.partial(source))
            logger.info("model download of %s started", source.display)
            try:
                await transfer(source, checked, policy, self.transport, partial, progress)
                model = await self._admit(source, policy, partial)
            except ModelSourceError as exc:  # a refused redirect, too
                if not (isinstance(exc, ModelUnavailable) and exc.retryable
                        and _resumable(source, partial)):
                    partial.discard()
                raise
            logger.info("model download of %s done: sha256 %s, %d bytes", source.display,
                        model.sha256, model.size)
            return model

    async def _admit(self, source: ModelSource, policy: SourcePolicy,
                     partial: PartialFile) -> CachedModel:
        """Verify the finished download and move it into the cache (or remove it)."""
        sha256 = partial.hexdigest()
        if source.sha256 is not None and sha256 != source.sha256:
            partial.discard()
            raise HashMismatch(f"{source.display} has sha256 {sha256}, not the pinned "
                               f"{source.sha256}; the download was removed")
        try:
            policy.check_hash(sha256)
        except HashNotAllowed:
            partial.discard()
            raise
        if not self.layout.blob(sha256).exists():
            await self.layout.make_room(partial.size, self.max_bytes, own=partial.path)
        blob = self.layout.adopt(partial.path, sha256, source)
        return CachedModel(sha256, blob, partial.size, source.basename)


def _resumable(source: ModelSource, partial: PartialFile) -> bool:
    """Whether a later try would continue `partial` (transfer.py): it holds bytes, and a
    pin or a saved validator keeps a changed file from being spliced onto them."""
    return partial.size > 0 and (source.sha256 is not None or partial.validator is not None)
