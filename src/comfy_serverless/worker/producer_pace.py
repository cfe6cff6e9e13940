"""When the worker's producer claims, and what it waits for between claims.

The producer claims while there is room (one running job, plus `prefetch` more handed to
ComfyUI behind it once it holds the first), and otherwise waits for whatever may make room
or bring work; a stop drains what runs. Kept apart from worker.py, which wires them.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Iterable, Mapping
from typing import Any

from comfy_serverless.worker.wakeups import Wakeups

__all__ = ["has_room", "log_drain", "wait_for_change"]

log = logging.getLogger(__name__)


def has_room(running: Mapping[str, asyncio.Event], prefetch: int) -> bool:
    """Whether one more job may be claimed: at most `prefetch` behind the running one, and
    each job claimed so far already in ComfyUI's hands (its `submitted` event set)."""
    if len(running) > prefetch:
        return False
    return all(submitted.is_set() for submitted in running.values())


async def wait_for_change(wakeups: Wakeups, poll_interval: float,
                          running: Mapping[str, asyncio.Event],
                          jobs: Iterable[asyncio.Task[Any]]) -> None:
    """Until a job ends, a running job is in ComfyUI's hands, or new work may be there (a
    wake-up, or a jittered poll that catches anything missed)."""
    poll = poll_interval * random.uniform(0.5, 1.5)
    work = asyncio.create_task(wakeups.wait_for_work(poll))
    submissions = [asyncio.create_task(submitted.wait())
                   for submitted in running.values() if not submitted.is_set()]
    waiters: set[asyncio.Future[Any]] = {work, *submissions, *jobs}
    await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    for waiter in (work, *submissions):
        waiter.cancel()


def log_drain(worker_id: str, running: Iterable[str], grace: float) -> None:
    """Say, as a stop begins, what the worker drains and how long it waits for it."""
    names = sorted(running)
    if not names:
        log.info("worker %s stopping: no job running, nothing to drain", worker_id)
        return
    log.info("worker %s stopping: draining %s; waits up to %.0f s for it to finish, then "
             "hands it back to the queue", worker_id, ", ".join(names), grace)
