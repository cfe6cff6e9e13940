"""The fleet figures that /metrics adds for operators (deploy/observability): how long the
oldest queued job of each priority has waited, failed executions by error code, and how many
leases the rescuer has taken back."""

from __future__ import annotations

from dataclasses import dataclass

from comfy_serverless.store.connector import Connector

__all__ = ["FleetFigures", "FleetMetricsStore"]


@dataclass(frozen=True)
class FleetFigures:
    oldest_queued_age: dict[str, float]
    failures_by_code: dict[str, int]
    lease_rescues: int


class FleetMetricsStore:
    def __init__(self, connector: Connector, queries: dict[str, str]) -> None:
        self._db = connector
        self._sql = queries

    async def figures(self, now: float) -> FleetFigures:
        oldest = await self._db.fetch_all(self._sql["oldest_queued_by_priority"])
        failures = await self._db.fetch_all(self._sql["failures_by_code"])
        rescues = await self._db.fetch_one(self._sql["lease_rescues"])
        return FleetFigures(
            oldest_queued_age={str(row["priority"]): max(0.0, now - float(row["oldest"]))
                               for row in oldest},
            failures_by_code={str(row["code"]): int(row["count"]) for row in failures},
            lease_rescues=int(rescues["count"]) if rescues else 0,
        )
