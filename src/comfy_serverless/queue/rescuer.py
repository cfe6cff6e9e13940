"""The rescuer: revives executions whose worker stopped renewing its lease (it died, hung,
or lost its network). It reports each as `worker_lost` to the outcome policy
(queue/outcome.py), which sends it back to the queue while it has attempts left, with
backoff, or fails it with `error_type: WORKER_LOST` once they are spent.

It runs in every API and worker process; its updates are guarded by the lease and its expiry,
so any number of rescuers agree, and a worker that renewed in time keeps its job. It only
rescues: the queue's tidying (statistics, expired keys) is queue/housekeeping.py's.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from comfy_serverless.background import BackgroundService
from comfy_serverless.queue.outcome import Attempt, Retry, decide, worker_lost
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

    async def run_once(self) -> RescueReport:
        report = RescueReport()
        now = time.time()
        if self._aging_seconds:
            await self._store.claims.age_queued(now, self._aging_seconds)
        for lease in await self._store.claims.expired_leases(now):
            execution = await self._store.executions.execution(lease.execution_id)
            if execution is not None:
                await self._rescue(execution, lease, now, report)
        return report

    async def _rescue(self, execution: ExecutionRecord, lease: Lease, now: float,
                      report: RescueReport) -> None:
        failure = worker_lost(execution.lease_owner, execution.current_node_id,
                              execution.current_node)
        decision = decide(failure, Attempt.of(execution))
        retry_at = decision.retry_at(now) if isinstance(decision, Retry) else None
        retrying = retry_at is not None
        verdict = "queued again" if retrying else "failed, no attempts left"
        entry = LogEntry(now, "execution_rescued", execution.current_node_id,
                         f"Worker {lease.worker_id} lost its lease; {verdict}")
        rescued = await self._store.claims.rescue(lease, decision.error, retry_at=retry_at, now=now,
                                                  log=[entry])
        if rescued:
            (report.requeued if retrying else report.failed).append(execution.id)
            log.warning("execution %s: worker %s lost its lease; %s", execution.id,
                        lease.worker_id, verdict)
            if not retrying and self._on_failed is not None:
                await self._on_failed(execution)
