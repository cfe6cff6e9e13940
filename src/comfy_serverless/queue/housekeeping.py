"""Housekeeping: the queue's periodic tidying, apart from the rescue of lost leases.

Each pass refreshes the planner's statistics of the queue (so the claim's plan follows the
queue's size), forgets what has expired: idempotency keys past their TTL, the model
folders of workers silent for a day, and expired preloads; and, with an execution retention
set, deletes finished executions older than it in bounded batches. Admission already
ignores expired keys and the model list ignores departed workers, so a late pass is only
untidy. It runs in every API and worker process, like the rescuer; every pass is idempotent.
It starts and stops the tally folder (queue/tallies.py) with itself, at its own interval.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from comfy_serverless.access.admission import IDEMPOTENCY_TTL_SECONDS
from comfy_serverless.background import BackgroundService
from comfy_serverless.queue.tallies import TallyFolder
from comfy_serverless.store.store import Store

__all__ = ["DEPARTED_AFTER_SECONDS", "HOUSEKEEPING_INTERVAL_SECONDS",
           "RETENTION_BATCH_SIZE", "RETENTION_BATCHES_PER_PASS", "Housekeeping"]

HOUSEKEEPING_INTERVAL_SECONDS = 60.0
# A worker silent this long has left the fleet: its model folders are forgotten.
DEPARTED_AFTER_SECONDS = 24 * 3600.0
# Execution retention deletes at most this many executions per statement (a short
# transaction) and this many batches per pass, then lets the pass end; a pass that filled
# every batch asks to run again at once, so a backlog drains without one long transaction.
RETENTION_BATCH_SIZE = 500
RETENTION_BATCHES_PER_PASS = 10


class Housekeeping(BackgroundService):
    name = "housekeeping"

    def __init__(self, store: Store, *, interval: float = HOUSEKEEPING_INTERVAL_SECONDS,
                 execution_retention_days: int = 0,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(interval)
        self._store = store
        self._clock = clock
        self._retention_seconds = execution_retention_days * 86400.0
        self._folder = TallyFolder(store)

    def start(self) -> None:
        super().start()
        self._folder.start()

    async def close(self) -> None:
        await self._folder.stop()

    async def run_once(self) -> bool:
        """One pass; True when execution retention has more to delete (go again at once)."""
        now = self._clock()
        await self._store.claims.refresh_planner_statistics()
        await self._store.access.forget_idempotency_keys(now - IDEMPOTENCY_TTL_SECONDS)
        await self._store.models.forget_departed(now - DEPARTED_AFTER_SECONDS)
        return await self._delete_expired_executions(now)

    async def _delete_expired_executions(self, now: float) -> bool:
        """Bounded batches of finished executions past the retention (0 days: keep all)."""
        if self._retention_seconds <= 0:
            return False
        for _ in range(RETENTION_BATCHES_PER_PASS):
            deleted = await self._store.history.delete_finished_before(
                now - self._retention_seconds, RETENTION_BATCH_SIZE)
            if deleted < RETENTION_BATCH_SIZE:
                return False
        return True
