"""Housekeeping: the queue's periodic tidying, apart from the rescue of lost leases.

Each pass refreshes the planner's statistics of the queue (so the claim's plan follows the
queue's size) and forgets what has expired: idempotency keys past their TTL, the model
folders of workers silent for a day, and expired preloads. Admission already ignores
expired keys and the model list ignores departed workers, so a late pass is only untidy.
It runs in every API and worker process, like the rescuer; every pass is idempotent.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from comfy_serverless.access.admission import IDEMPOTENCY_TTL_SECONDS
from comfy_serverless.background import BackgroundService
from comfy_serverless.store.store import Store

__all__ = ["DEPARTED_AFTER_SECONDS", "HOUSEKEEPING_INTERVAL_SECONDS", "Housekeeping"]

HOUSEKEEPING_INTERVAL_SECONDS = 60.0
# A worker silent this long has left the fleet: its model folders are forgotten.
DEPARTED_AFTER_SECONDS = 24 * 3600.0


class Housekeeping(BackgroundService):
    name = "housekeeping"

    def __init__(self, store: Store, *, interval: float = HOUSEKEEPING_INTERVAL_SECONDS,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(interval)
        self._store = store
        self._clock = clock

    async def run_once(self) -> None:
        """One pass; it never asks to run again at once (there is no backlog to drain)."""
        now = self._clock()
        await self._store.claims.refresh_planner_statistics()
        await self._store.access.forget_idempotency_keys(now - IDEMPOTENCY_TTL_SECONDS)
        await self._store.models.forget_departed(now - DEPARTED_AFTER_SECONDS)
