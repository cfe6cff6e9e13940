"""The rescuer: revives executions whose worker stopped renewing its lease (it died, hung,
or lost its network). Each goes back to the queue while it has attempts left, with backoff,
or fails with `error_type: WORKER_LOST` once they are spent.

It runs in every API and worker process; its updates are guarded by the lease and its expiry,
so any number of rescuers agree, and a worker that renewed in time keeps its job.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from comfy_serverless.access.admission import IDEMPOTENCY_TTL_SECONDS
from comfy_serverless.background import BackgroundService
from comfy_serverless.queue.retry import retry_delay
from comfy_serverless.store.records import ExecutionRecord, Lease, LogEntry
from comfy_serverless.store.store import Store

__all__ = ["RescueReport", "Rescuer"]

log = logging.getLogger(__name__)


@dataclass
class RescueReport:
    requeued: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        """Anything rescued: more expired leases may be waiting."""
        return bool(self.requeued or self.failed)


def _lost_error(execution: ExecutionRecord, retrying: bool, delay: float | None
                ) -> dict[str, Any]:
    remaining = execution.max_attempts - execution.attempt
    return {
        "error_code": "WORKFLOW_EXECUTION_FAILED",
        "message": f"Worker {execution.lease_owner} stopped renewing its lease",
        "details": {"execution_id": execution.id, "failed_node": execution.current_node_id,
                    "node_type": execution.current_node, "error_type": "WORKER_LOST",
                    "worker_id": execution.lease_owner},
        "retry_info": {"retryable": True, "retry_delay": delay,
                       "max_retries": execution.max_attempts - 1,
                       "remaining_retries": max(remaining - 1, 0) if retrying else 0},
    }


# How often the housekeeping pass refreshes the planner's statistics of the queue (and
# forgets expired idempotency keys, the model folders of workers silent for _DEPARTED_AFTER,
# and expired preloads: admission already ignores expired keys, so this is only tidying).
_STATISTICS_INTERVAL = 60.0
_DEPARTED_AFTER = 24 * 3600.0


class Rescuer(BackgroundService):
    """Also the queue's starvation guard: each pass ages waiting executions (see age_queued)."""

    name = "rescuer"

    def __init__(self, store: Store, *, interval: float = 5.0,
                 aging_seconds: float | None = None,
                 on_failed: Callable[[ExecutionRecord], Awaitable[None]] | None = None,
                 ) -> None:
        """`on_failed` runs for each execution this pass fails for good (e.g. to delete its
        staged input images, which no worker will discard now)."""
        super().__init__(interval)
        self._store = store
        self._aging_seconds = aging_seconds
        self._on_failed = on_failed
        self._statistics_refreshed_at = 0.0

    async def run_once(self) -> RescueReport:
        report = RescueReport()
        now = time.time()
        if self._aging_seconds:
            await self._store.claims.age_queued(now, self._aging_seconds)
        for lease in await self._store.claims.expired_leases(now):
            execution = await self._store.executions.execution(lease.execution_id)
            if execution is not None:
                await self._rescue(execution, lease, now, report)
        if now - self._statistics_refreshed_at >= _STATISTICS_INTERVAL:
            self._statistics_refreshed_at = now
            await self._store.claims.refresh_planner_statistics()
            await self._store.access.forget_idempotency_keys(now - IDEMPOTENCY_TTL_SECONDS)
            await self._store.models.forget_departed(now - _DEPARTED_AFTER)
        return report

    async def _rescue(self, execution: ExecutionRecord, lease: Lease, now: float,
                      report: RescueReport) -> None:
        retrying = execution.attempt < execution.max_attempts
        delay = retry_delay(execution.attempt) if retrying else None
        error = _lost_error(execution, retrying, delay)
        verdict = "queued again" if retrying else "failed, no attempts left"
        entry = LogEntry(now, "execution_rescued", execution.current_node_id,
                         f"Worker {lease.worker_id} lost its lease; {verdict}")
        rescued = await self._store.claims.rescue(
            lease, error, retry_at=now + delay if delay is not None else None, now=now,
            log=[entry])
        if rescued:
            (report.requeued if retrying else report.failed).append(execution.id)
            log.warning("execution %s: worker %s lost its lease; %s", execution.id,
                        lease.worker_id, verdict)
            if not retrying and self._on_failed is not None:
                await self._on_failed(execution)
