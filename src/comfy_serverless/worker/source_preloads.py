"""Preloads by source on one worker: each active preload that names a source (and applies
to the worker's region) is fetched into the worker's model cache in the background, under
the requesting tier's policy (its `model_sources`, the SSRF rules, require_model_hashes,
all checked again here before any connection), held there against eviction until the
preload expires (a pin, like a running job's), and placed in its model folder. Once
placed, it is handed back as an ordinary preload of the placed file, which the model
keeper keeps warm where its folder's models load alone.

A fetch that fails (a refusal, a wrong hash, the network, a full cache) is logged and
tried again after `retry_seconds`, while the preload lasts; it holds nothing meanwhile. A
preload that expired (or is gone) releases its pin.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from comfy_serverless.model_sources import parse_source
from comfy_serverless.store.models import ModelPreload
from comfy_serverless.worker.model_fetch import ModelFetcher

__all__ = ["SourcePreloads"]

log = logging.getLogger(__name__)


@dataclass
class _Fetch:
    """One source preload on this worker: its fetch, the pin it holds, where it landed."""

    task: asyncio.Task[str]
    holds: contextlib.AsyncExitStack = field(default_factory=contextlib.AsyncExitStack)
    failed_at: float | None = None

    @property
    def placed(self) -> str | None:
        if not self.task.done() or self.task.cancelled() or self.task.exception():
            return None
        return self.task.result()


class SourcePreloads:
    def __init__(self, fetcher: ModelFetcher, *, retry_seconds: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._fetcher = fetcher
        self._retry_seconds = retry_seconds
        self._clock = clock
        self._fetches: dict[str, _Fetch] = {}
        self._reported: set[str] = set()

    async def ready(self, preloads: Iterable[ModelPreload]) -> tuple[list[ModelPreload], bool]:
        """The source preloads placed so far, as preloads of their placed files, and
        whether any was placed since the last call (the folders changed). Fetches the
        others (in the background), and releases the pins of preloads no longer active."""
        active = {preload.id: preload for preload in preloads if preload.source}
        await self._release(set(self._fetches) - set(active))
        placed = []
        for preload in active.values():
            fetch = self._started(preload)
            if fetch.placed is not None:
                placed.append(replace(preload, filename=fetch.placed))
        fresh = {preload.id for preload in placed} - self._reported
        self._reported = {preload.id for preload in placed}
        return placed, bool(fresh)

    async def close(self) -> None:
        await self._release(set(self._fetches))

    def _started(self, preload: ModelPreload) -> _Fetch:
        fetch = self._fetches.get(preload.id)
        if fetch is not None and fetch.task.done() and fetch.placed is None:
            if fetch.failed_at is None:
                fetch.failed_at = self._clock()
                log.warning("preload of %s failed: %s", preload.model_id, fetch.task.exception())
            if self._clock() - fetch.failed_at >= self._retry_seconds:
                fetch = None
        if fetch is None:
            holds = contextlib.AsyncExitStack()
            fetch = _Fetch(asyncio.create_task(self._fetch(preload, holds)), holds)
            self._fetches[preload.id] = fetch
        return fetch

    async def _fetch(self, preload: ModelPreload, holds: contextlib.AsyncExitStack) -> str:
        """Fetch, pin (until `holds` closes) and place the preload's file; its name."""
        assert preload.source is not None
        fetcher = self._fetcher
        try:
            source = parse_source(preload.source, sha256=preload.source_sha256,
                                  hf_endpoint=fetcher.hf_endpoint)
            model = await holds.enter_async_context(fetcher.cache.use(
                source, fetcher.policy_for(preload.allowed_hosts)))
            name = fetcher.cache.place(model, fetcher.models_dir / preload.folder)
        except BaseException:  # nothing stays pinned for a fetch that failed
            await holds.aclose()
            raise
        log.info("preload of %s: %s placed as %s/%s", preload.model_id,
                 source.display, preload.folder, name)
        return name

    async def _release(self, ids: set[str]) -> None:
        for preload_id in ids:
            fetch = self._fetches.pop(preload_id)
            fetch.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await fetch.task
            await fetch.holds.aclose()
