"""The metrics' side of the store: the figures of /metrics, of the queue status and of the
estimates. Each reads a few maintained rows or a bounded index range, so a scrape costs
the same however many executions the table holds."""

from __future__ import annotations

from dataclasses import dataclass

from comfy_serverless.store.connector import Connector

__all__ = ["DURATION_BOUNDS", "RECENT_SAMPLE", "DurationHistogram", "MetricsStore", "StatusTally"]

# The queue status's recent averages cover at most this many executions of their window
# (the latest), as the estimates cover the last 50 completions.
RECENT_SAMPLE = 100

# The histograms' bucket bounds (seconds), as migration 0016 seeded duration_bounds with
# them: the tallies count at these bounds as executions complete, so changing them takes a
# migration (a conformance test checks the two agree).
DURATION_BOUNDS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
                   3600.0)


@dataclass(frozen=True)
class DurationHistogram:
    """A Prometheus histogram of completed executions: `buckets` pairs each upper bound with
    how many took at most that long (cumulative); `count` and `total` cover them all."""

    buckets: list[tuple[float, int]]
    count: int
    total: float


@dataclass(frozen=True)
class StatusTally:
    """How many executions one (status, priority) holds, and the sum of their submit times
    in milliseconds (so a mean wait is exact: now - sum / count)."""

    status: str
    priority: int
    count: int
    submitted_ms_sum: int


class MetricsStore:
    """Every figure here reads maintained tallies (migrations 0016, 0018) or an index range bounded
    by a time window: a scrape or a queue status costs the same with a queue of 100 or
    100,000 and a history of none or millions."""

    def __init__(self, connector: Connector, queries: dict[str, str]) -> None:
        self._db = connector
        self._sql = queries

    async def fold_tallies(self, batch: int = 10_000) -> int:
        """Fold up to `batch` of PostgreSQL's pending deltas of each kind into the tallies
        (how many it moved); 0 when another process is folding, and always on SQLite,
        whose triggers update the tallies directly. The tally folder runs it every second;
        readers are right without it, only slower as the deltas pile up."""
        if self._db.dialect != "postgres":
            return 0
        async with self._db.transaction() as tx:
            locked = await tx.fetch_one(self._sql["lock_tally_fold"])
            if not locked or not locked["locked"]:
                return 0
            row = await tx.fetch_one(self._sql["fold_tally_deltas"], {"batch": batch})
        return int(row["folded"]) if row else 0

    async def status_tallies(self) -> list[StatusTally]:
        rows = await self._db.fetch_all(self._sql["status_tallies"])
        return [StatusTally(str(r["status"]), int(r["priority"]), int(r["count"]),
                            int(r["submitted_ms_sum"])) for r in rows]

    async def duration_histograms(self) -> tuple[DurationHistogram, DurationHistogram]:
        """The queue wait (submit to start) and processing time (start to end) of every
        execution that completed, at the bounds of the duration_bounds table. Tallied at
        completion, so they keep counting what execution retention deletes."""
        rows = await self._db.fetch_all(self._sql["duration_tallies"])
        totals = await self._db.fetch_one(self._sql["completion_totals"])
        count = int(totals["count"]) if totals else 0
        bounds = [float(row["le"]) for row in rows]
        waits = [int(row["waits"]) for row in rows]
        works = [int(row["works"]) for row in rows]
        return (
            DurationHistogram(list(zip(bounds, waits, strict=True)), count,
                              float(totals["wait_sum"] or 0) if totals else 0.0),
            DurationHistogram(list(zip(bounds, works, strict=True)), count,
                              float(totals["work_sum"] or 0) if totals else 0.0),
        )

    async def metric_counts(self) -> dict[str, dict[str, int]]:
        """Counts for /metrics: executions by status, queue depth by priority, webhook
        attempts by outcome (tallied as logged, migration 0018), model loads."""
        tallies = await self.status_tallies()
        by_status: dict[str, int] = {}
        for tally in tallies:
            by_status[tally.status] = by_status.get(tally.status, 0) + tally.count
        deliveries = await self._db.fetch_all(self._sql["webhook_deliveries_by_outcome"])
        loads = await self._db.fetch_one(self._sql["model_loads"])
        return {
            "executions": by_status,
            "queue_depth": {str(t.priority): t.count for t in tallies if t.status == "queued"},
            "webhook_deliveries": {str(r["outcome"]): int(r["count"]) for r in deliveries},
            "model_loads": {"all": int(loads["count"]) if loads else 0},
        }

    async def queue_totals(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for tally in await self.status_tallies():
            if tally.status in ("queued", "processing"):
                totals[tally.status] = totals.get(tally.status, 0) + tally.count
        return totals

    async def queue_breakdown(self, now: float) -> list[tuple[int, int, float]]:
        """(priority, queued count, mean wait so far) per priority, most urgent first."""
        queued = [t for t in await self.status_tallies() if t.status == "queued" and t.count > 0]
        return [(t.priority, t.count, now - t.submitted_ms_sum / 1000 / t.count)
                for t in sorted(queued, key=lambda t: -t.priority)]

    async def recent_averages(self, since: float) -> tuple[float | None, float | None]:
        """Mean wait (submit to start) of the latest RECENT_SAMPLE executions started since
        `since`, and mean processing time of the latest RECENT_SAMPLE completed since then:
        a busy hour costs a queue status no more than a quiet one."""
        params = {"since": since, "sample": RECENT_SAMPLE}
        wait = await self._db.fetch_one(self._sql["recent_wait_time"], params)
        work = await self._db.fetch_one(self._sql["recent_processing_time"], params)
        return (None if not wait or wait["seconds"] is None else float(wait["seconds"]),
                None if not work or work["seconds"] is None else float(work["seconds"]))

    async def average_processing_time(self, signature: str | None) -> float | None:
        """Mean processing time of the last 50 completions (of one workflow signature)."""
        if signature is None:
            row = await self._db.fetch_one(self._sql["average_processing_time"])
        else:
            row = await self._db.fetch_one(self._sql["average_processing_time_for_signature"],
                                           {"signature": signature})
        if not row or not row["samples"]:
            return None
        return float(row["seconds"])

    async def live_worker_count(self, since: float) -> int:
        row = await self._db.fetch_one(self._sql["live_worker_count"], {"since": since})
        return int(row["live"]) if row else 0
