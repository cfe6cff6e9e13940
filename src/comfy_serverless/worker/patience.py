"""Waiting out a store that is briefly away, for the writes a job cannot do without.

A PostgreSQL restart takes seconds; a worker that has run a job must not lose it for that.
The writes that record a job's outcome (or that it was handed to ComfyUI) are tried again
while the store answers StoreUnavailable, with a growing pause, within the job's lease: the
rescuer takes nothing back before the lease runs out, so no other worker can have it.

A write may also commit and lose its reply (the connection drops after COMMIT): the next try
then matches no row. So when a try that follows an outage changes nothing, the row is read
again, and a result that this very lease wrote counts as written (`ours`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from comfy_serverless.errors import StoreUnavailable
from comfy_serverless.store.records import ExecutionRecord, Lease

__all__ = ["already_written", "when_store_answers"]

log = logging.getLogger(__name__)

T = TypeVar("T")

_FIRST_PAUSE = 0.1
_LONGEST_PAUSE = 2.0


async def when_store_answers(write: Callable[[], Awaitable[T]], *, within: float,
                             ours: Callable[[], Awaitable[bool]] | None = None) -> T | bool:
    """`write()`, tried again while the store is unavailable, for up to `within` seconds.
    A falsy answer after an outage is True when `ours()` finds the write already made."""
    deadline = time.monotonic() + within
    pause = _FIRST_PAUSE
    interrupted = False
    while True:
        try:
            written = await write()
            if not written and interrupted and ours is not None:
                return await when_store_answers(ours, within=max(deadline - time.monotonic(),
                                                                 0.0))
            return written
        except StoreUnavailable as exc:
            interrupted = True
            if time.monotonic() + pause > deadline:
                raise
            log.warning("store unavailable, trying again in %.1fs: %s", pause, exc)
            await asyncio.sleep(pause)
            pause = min(pause * 2, _LONGEST_PAUSE)


def already_written(read: Callable[[], Awaitable[ExecutionRecord | None]], lease: Lease,
                    status: str, engine_prompt_id: str | None = None
                    ) -> Callable[[], Awaitable[bool]]:
    """Whether the row, read again, shows `status` written under `lease` (and, while it is
    processing, `engine_prompt_id`)."""
    async def check() -> bool:
        row = await read()
        if row is None:
            return False
        if status == "queued":  # requeued by this attempt, and perhaps claimed again since
            return (row.status == "queued" and row.attempt == lease.attempt) \
                or row.attempt > lease.attempt
        if status == "processing":
            return (row.status == status and row.lease_owner == lease.worker_id
                    and row.attempt == lease.attempt
                    and row.engine_prompt_id == engine_prompt_id)
        return (row.status == status and row.worker_id == lease.worker_id
                and row.attempt == lease.attempt)
    return check
