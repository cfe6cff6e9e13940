"""The tally folder: moves PostgreSQL's status, log, failure and delivery tally deltas
(migrations 0016 and 0018) into the tallies every second, so that a queue status or a
scrape adds at most about a second's worth of pending deltas to the few tally rows, however
busy the fleet is. Every process runs one (Housekeeping starts it); an advisory lock lets
one fold at a time, the others skip. On SQLite, whose triggers update the tallies
directly, a pass does nothing."""

from __future__ import annotations

from comfy_serverless.background import BackgroundService
from comfy_serverless.store.store import Store

__all__ = ["TALLY_FOLD_BATCH", "TALLY_FOLD_INTERVAL_SECONDS", "TallyFolder"]

TALLY_FOLD_INTERVAL_SECONDS = 1.0
# Deltas of each kind folded per statement; a full batch asks to fold again at once.
TALLY_FOLD_BATCH = 10_000


class TallyFolder(BackgroundService):
    name = "tally-folder"

    def __init__(self, store: Store, *,
                 interval: float = TALLY_FOLD_INTERVAL_SECONDS) -> None:
        super().__init__(interval)
        self._store = store

    async def run_once(self) -> bool:
        """One fold; True when a batch was full (there may be more to fold)."""
        return await self._store.metrics.fold_tallies(TALLY_FOLD_BATCH) >= TALLY_FOLD_BATCH
