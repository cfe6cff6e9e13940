"""An unexpected exception in an attempt (a defect, not one of the failures the executor
knows): the job must not sit in `processing` until its lease runs out, nor run twice.

Its prompt is withdrawn from ComfyUI first (so no orphan goes on running beside the next
attempt and writing outputs after the attempt's cleanup), then the attempt is recorded as a
retryable WORKER_ERROR. When the defect struck while a failure was being recorded, nothing
is recorded a second time (a retryable WORKER_ERROR must not stand in for, say, a TIMEOUT):
the job is left to the rescuer, which takes it back when its lease runs out.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable

from comfy_serverless.queue.outcome import Failure
from comfy_serverless.worker.execution_context import ExecutionContext, Outcome

__all__ = ["after_defect"]

log = logging.getLogger(__name__)


async def after_defect(context: ExecutionContext,
                       interrupt: Callable[[ExecutionContext], Awaitable[None]],
                       fail: Callable[[ExecutionContext, Failure], Awaitable[Outcome]]
                       ) -> Outcome:
    log.exception("execution %s: unexpected worker error", context.lease.execution_id)
    with contextlib.suppress(Exception):
        await interrupt(context)
    if context.failing:
        return "lost"
    return await fail(context, context.tracker.failure_here(
        "WORKER_ERROR", "the worker met an unexpected error", retryable=True))
