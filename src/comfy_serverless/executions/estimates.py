"""Queue position and time estimates, from measured history, never constants.

- duration: the mean processing time of the last completed executions with the same
  workflow signature, else of any workflow; unknown (null) before the first completion;
- start: now plus the work queued ahead, shared by the workers alive in the last minute.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from comfy_serverless.store.records import ExecutionRecord
from comfy_serverless.store.store import Store

__all__ = ["Estimate", "estimate"]

_LIVE_WINDOW = 60.0


@dataclass(frozen=True)
class Estimate:
    queue_position: int
    duration: float | None
    start_time: float | None
    completion_time: float | None


async def _duration(store: Store, signature: str) -> float | None:
    own = await store.average_processing_time(signature)
    return own if own is not None else await store.average_processing_time(None)


async def estimate(store: Store, execution: ExecutionRecord) -> Estimate:
    now = time.time()
    position = await store.queue_position(execution)
    duration = await _duration(store, execution.signature)
    if execution.status != "queued":
        start = execution.started_at
    elif duration is None:
        start = None
    else:
        workers = max(1, await store.live_worker_count(now - _LIVE_WINDOW))
        start = now + (position - 1) * duration / workers
    completion = start + duration if start is not None and duration is not None else None
    return Estimate(position, duration, start, completion)
