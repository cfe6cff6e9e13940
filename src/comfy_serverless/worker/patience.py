"""Waiting out a store that is briefly away, for the writes a job cannot do without.

A PostgreSQL restart takes seconds; a worker that has run a job must not lose it for that.
The writes that record a job's outcome (or that it was handed to ComfyUI) are tried again
while the store answers StoreUnavailable, with a growing pause, within the job's lease: the
rescuer takes nothing back before the lease runs out, so no other worker can have it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from comfy_serverless.errors import StoreUnavailable

__all__ = ["when_store_answers"]

log = logging.getLogger(__name__)

T = TypeVar("T")

_FIRST_PAUSE = 0.1
_LONGEST_PAUSE = 2.0


async def when_store_answers(write: Callable[[], Awaitable[T]], *, within: float) -> T:
    """`write()`, tried again while the store is unavailable, for up to `within` seconds."""
    deadline = time.monotonic() + within
    pause = _FIRST_PAUSE
    while True:
        try:
            return await write()
        except StoreUnavailable as exc:
            if time.monotonic() + pause > deadline:
                raise
            log.warning("store unavailable, trying again in %.1fs: %s", pause, exc)
            await asyncio.sleep(pause)
            pause = min(pause * 2, _LONGEST_PAUSE)
