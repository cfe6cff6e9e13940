"""Preloads by source on one worker: each active preload that names a source (and applies
to the worker's region) is fetched into the worker's model cache in the background, under
the requesting tier's policy (its `model_sources`, the SSRF rules, require_model_hashes,
all checked again here before any connection), held there against eviction until the
preload expires (a pin, like a running job's), and placed in its model folder. Once
placed, it is handed back as an ordinary preload of the placed file, which the model
keeper keeps warm where its folder's models load alone.

A fetch that fails holds nothing. A permanent failure is never tried again while the
preload lasts (on any worker, each failed attempt may be a multi-GB download): a refused
source or hash, a malformed source, bytes of the wrong sha256, a file over the cache's
whole budget (any ModelUnavailable that is not `retryable`). The others (the network, a
cache full of files in use, anything unexpected) are tried again after `retry_seconds`,
doubling after each failure up to `longest_retry_seconds`. A failure is logged when its
kind changes (the first, a different error, a permanent one), not at every attempt. A
preload that expired (or is gone) releases its pin.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from comfy_serverless.model_sources import (
    HashNotAllowed,
    MalformedSource,
    ModelUnavailable,
    SourceRefused,
    parse_source,
)
from comfy_serverless.store.models import ModelPreload
from comfy_serverless.worker.model_fetch import ModelFetcher

__all__ = ["SourcePreloads", "permanent", "to_keep_warm"]

log = logging.getLogger(__name__)


@dataclass
class _Fetch:
    """One source preload on this worker: its fetch, the pin it holds, where it landed."""

    task: asyncio.Task[str]
    holds: contextlib.AsyncExitStack = field(default_factory=contextlib.AsyncExitStack)
    failures: int = 0  # the preload's failed attempts before this one's end was noticed
    retry_at: float | None = None  # set once this attempt failed; inf: never again
    logged: str | None = None  # the kind of failure last logged for the preload

    @property
    def placed(self) -> str | None:
        if not self.task.done() or self.task.cancelled() or self.task.exception():
            return None
        return self.task.result()


def to_keep_warm(active: Iterable[ModelPreload], placed: Iterable[ModelPreload]
                 ) -> list[ModelPreload]:
    """The preloads to load: those of a model_id, and those by source once placed, each
    once (a pinned source's preload names its placed file already, so it equals its placed
    form: taking it from `active` too would load it twice)."""
    return [*(preload for preload in active if preload.source is None), *placed]


def permanent(exc: BaseException) -> bool:
    """Whether trying the same preload again cannot help."""
    if isinstance(exc, SourceRefused | HashNotAllowed | MalformedSource):
        return True
    return isinstance(exc, ModelUnavailable) and not exc.retryable


class SourcePreloads:
    def __init__(self, fetcher: ModelFetcher, *, retry_seconds: float = 30.0,
                 longest_retry_seconds: float = 1800.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._fetcher = fetcher
        self._retry_seconds, self._longest_retry = retry_seconds, longest_retry_seconds
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
        """The preload's fetch: the one under way, placed, or failed and not yet due again;
        else a new attempt (which remembers the failures before it)."""
        fetch = self._fetches.get(preload.id)
        if fetch is not None and fetch.task.done() and fetch.placed is None:
            if fetch.retry_at is None:
                self._failed(preload, fetch)
            assert fetch.retry_at is not None
            if self._clock() >= fetch.retry_at:
                fetch = _Fetch(self._attempt(preload, holds := contextlib.AsyncExitStack()),
                               holds, failures=fetch.failures, logged=fetch.logged)
                self._fetches[preload.id] = fetch
        if fetch is None:
            holds = contextlib.AsyncExitStack()
            fetch = _Fetch(self._attempt(preload, holds), holds)
            self._fetches[preload.id] = fetch
        return fetch

    def _attempt(self, preload: ModelPreload, holds: contextlib.AsyncExitStack
                 ) -> asyncio.Task[str]:
        return asyncio.create_task(self._fetch(preload, holds))

    def _failed(self, preload: ModelPreload, fetch: _Fetch) -> None:
        """Note a failed attempt: when to try again (never, or after a back-off that doubles
        with each failure), and log it if its kind changed."""
        exc = fetch.task.exception()
        assert exc is not None
        fetch.failures += 1
        given_up = permanent(exc)
        delay = math.inf if given_up else min(
            self._retry_seconds * 2 ** (fetch.failures - 1), self._longest_retry)
        fetch.retry_at = self._clock() + delay
        kind = f"{type(exc).__name__}{' (permanent)' if given_up else ''}"
        if kind == fetch.logged:
            log.debug("preload of %s failed again (%d failures): %s", preload.model_id,
                      fetch.failures, exc)
            return
        fetch.logged = kind
        if given_up:
            log.warning("preload of %s failed; not tried again while it lasts: %s",
                        preload.model_id, exc)
        else:
            log.warning("preload of %s failed; tried again in %.0fs, then less and less "
                        "often: %s", preload.model_id, delay, exc)

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
