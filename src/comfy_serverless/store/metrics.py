"""The metrics' side of the store: the figures of /metrics, of the queue status and of the
estimates. Each is an aggregate the database computes, so a scrape reads a few rows however
many executions the table holds."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from comfy_serverless.store.connector import Connector

__all__ = ["DurationHistogram", "MetricsStore"]


@dataclass(frozen=True)
class DurationHistogram:
    """A Prometheus histogram of completed executions: `buckets` pairs each upper bound with
    how many took at most that long (cumulative); `count` and `total` cover them all."""

    buckets: list[tuple[float, int]]
    count: int
    total: float


class MetricsStore:
    def __init__(self, connector: Connector, queries: dict[str, str]) -> None:
        self._db = connector
        self._sql = queries

    async def duration_histograms(self, bounds: Sequence[float]
                                  ) -> tuple[DurationHistogram, DurationHistogram]:
        """The queue wait (submit to start) and processing time (start to end) of every
        completed execution, counted per bucket by the database: one row per bound."""
        ordered = sorted(bounds)
        rows = await self._db.fetch_all(self._sql["completed_duration_buckets"],
                                        {"bounds": json.dumps(ordered)})
        totals = await self._db.fetch_one(self._sql["completed_duration_totals"])
        count = int(totals["count"]) if totals else 0
        waits = [int(row["waits"]) for row in rows]
        works = [int(row["works"]) for row in rows]
        return (
            DurationHistogram(list(zip(ordered, waits, strict=True)), count,
                              float(totals["wait_sum"] or 0) if totals else 0.0),
            DurationHistogram(list(zip(ordered, works, strict=True)), count,
                              float(totals["work_sum"] or 0) if totals else 0.0),
        )

    async def metric_counts(self) -> dict[str, dict[str, int]]:
        """Counts for /metrics: executions by status, queue depth by priority, webhook
        attempts by outcome, model loads."""
        async def pairs(query: str, key: str) -> dict[str, int]:
            rows = await self._db.fetch_all(self._sql[query])
            return {str(row[key]): int(row["count"]) for row in rows}

        loads = await self._db.fetch_one(self._sql["model_loads"])
        return {
            "executions": await pairs("executions_by_status", "status"),
            "queue_depth": await pairs("queue_depth_by_priority", "priority"),
            "webhook_deliveries": await pairs("webhook_deliveries_by_outcome", "outcome"),
            "model_loads": {"all": int(loads["count"]) if loads else 0},
        }

    async def queue_totals(self) -> dict[str, int]:
        rows = await self._db.fetch_all(self._sql["queue_totals"])
        return {str(row["status"]): int(row["count"]) for row in rows}

    async def queue_breakdown(self, now: float) -> list[tuple[int, int, float]]:
        """(priority, queued count, mean wait so far) per priority, most urgent first."""
        rows = await self._db.fetch_all(self._sql["queue_breakdown"], {"now": now})
        return [(int(r["priority"]), int(r["count"]), float(r["avg_wait"] or 0)) for r in rows]

    async def recent_averages(self, since: float) -> tuple[float | None, float | None]:
        """Mean wait (submit to start) and processing time of executions since `since`."""
        wait = await self._db.fetch_one(self._sql["recent_wait_time"], {"since": since})
        work = await self._db.fetch_one(self._sql["recent_processing_time"], {"since": since})
        return (None if not wait or wait["seconds"] is None else float(wait["seconds"]),
                None if not work or work["seconds"] is None else float(work["seconds"]))

    async def average_processing_time(self, signature: str | None) -> float | None:
        row = await self._db.fetch_one(
            self._sql["average_processing_time"], {"signature": signature}
        )
        if not row or not row["samples"]:
            return None
        return float(row["seconds"])

    async def live_worker_count(self, since: float) -> int:
        row = await self._db.fetch_one(self._sql["live_worker_count"], {"since": since})
        return int(row["live"]) if row else 0
