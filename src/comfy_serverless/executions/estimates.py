"""Queue position and time estimates, from measured history, never constants.

- duration: the mean processing time of the last completed executions with the same
  workflow signature, else of any workflow; unknown (null) before the first completion;
- start: now plus the work queued ahead, shared by the workers alive in the last minute.

Averages and the worker count change slowly, so each is cached for a few seconds: a status
poll costs one indexed count, not three aggregates.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from comfy_serverless.store.records import ExecutionRecord
from comfy_serverless.store.store import Store

__all__ = ["Estimate", "Estimator"]

_LIVE_WINDOW = 60.0
_CACHE_SECONDS = 5.0
# At most this many workflow signatures' averages are kept: each distinct workflow shape
# submitted adds one, and a long-lived API process sees unboundedly many.
_MAX_SIGNATURES = 1024


@dataclass(frozen=True)
class Estimate:
    queue_position: int
    duration: float | None
    start_time: float | None
    completion_time: float | None


class Estimator:
    def __init__(self, store: Store, *, cache_seconds: float = _CACHE_SECONDS,
                 max_signatures: int = _MAX_SIGNATURES) -> None:
        self._store = store
        self._cache_seconds = cache_seconds
        self._max_signatures = max_signatures
        self._durations: dict[str | None, tuple[float, float | None]] = {}
        self._workers: tuple[float, int] = (0.0, 1)

    async def estimate(self, execution: ExecutionRecord) -> Estimate:
        if execution.is_finished:
            return Estimate(0, None, execution.started_at, execution.finished_at)
        position = await self._store.executions.queue_position(execution)
        duration = await self.duration(execution.signature)
        start: float | None
        if execution.status != "queued":
            start = execution.started_at
        elif duration is None:
            start = None
        else:
            start = time.time() + (position - 1) * duration / await self._live_workers()
        completion = start + duration if start is not None and duration is not None else None
        return Estimate(position, duration, start, completion)

    async def duration(self, signature: str) -> float | None:
        own = await self._average(signature)
        return own if own is not None else await self._average(None)

    async def _average(self, signature: str | None) -> float | None:
        now = time.monotonic()
        cached = self._durations.get(signature)
        if cached is not None and now - cached[0] < self._cache_seconds:
            return cached[1]
        value = await self._store.metrics.average_processing_time(signature)
        self._durations.pop(signature, None)  # re-inserted last: the dict is oldest first
        self._durations[signature] = (now, value)
        if len(self._durations) > self._max_signatures:
            self._forget_oldest(now)
        return value

    @property
    def cached_signatures(self) -> int:
        return len(self._durations)

    def _forget_oldest(self, now: float) -> None:
        """Drop the expired averages, then, if a burst of new shapes still exceeds the
        bound, the oldest: one more read each time they come back."""
        fresh = [(name, entry) for name, entry in self._durations.items()
                 if now - entry[0] < self._cache_seconds]
        self._durations = dict(fresh[-self._max_signatures:])

    async def _live_workers(self) -> int:
        now = time.monotonic()
        if now - self._workers[0] >= self._cache_seconds:
            count = await self._store.metrics.live_worker_count(time.time() - _LIVE_WINDOW)
            self._workers = (now, max(1, count))
        return self._workers[1]
