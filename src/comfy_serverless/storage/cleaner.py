"""The retention cleaner: deletes outputs whose `retention_days` have run out.

Each pass takes a batch of expired outputs from the store, deletes their files, and records
the deletion; results of those executions then answer 410 OUTPUTS_EXPIRED. Any number of
cleaners may run: deleting a missing file is not an error, and the record is guarded. A
deletion that fails is counted and retried later with a growing delay.
"""

from __future__ import annotations

import logging
import time

from comfy_serverless.background import BackgroundService
from comfy_serverless.errors import StorageError
from comfy_serverless.storage.base import OutputStorage, location_of
from comfy_serverless.store.store import Store

__all__ = ["RetentionCleaner"]

log = logging.getLogger(__name__)

# A file that cannot be deleted is tried again after 1 min, 2, 4 … at most 6 h, and waits
# out of the batch meanwhile, so that stuck files never hold back the others.
_RETRY_BASE = 60.0
_RETRY_MAX = 6 * 3600.0


class RetentionCleaner(BackgroundService):
    name = "retention-cleaner"

    def __init__(self, store: Store, storage: OutputStorage, *, interval: float,
                 batch_size: int = 100) -> None:
        super().__init__(interval)
        self._store = store
        self._storage = storage
        self._batch_size = batch_size

    async def run_once(self) -> int:
        """Delete one batch; returns how many outputs were deleted (a full batch: go on)."""
        now = time.time()
        deleted = 0
        for output in await self._store.retention.due(now, self._batch_size):
            try:
                await self._storage.delete(location_of(output))
            except StorageError as exc:
                delay = min(_RETRY_BASE * 2 ** output.delete_attempts, _RETRY_MAX)
                log.warning("cannot delete expired output %s yet (retry in %.0fs): %s",
                            output.id, delay, exc)
                await self._store.retention.postpone(output.id, now + delay)
                continue
            deleted += await self._store.retention.mark_deleted(output.id, now)
        return deleted if deleted >= self._batch_size else 0
