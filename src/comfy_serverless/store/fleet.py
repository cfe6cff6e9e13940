"""The fleet side of the store: the figures /metrics adds for operators (deploy/observability)
and the identity every process of a fleet must share (fleet/identity.py).

Figures: how long the oldest queued job of each priority has waited (one probe of the
claim-order index per queued priority), failed executions by error code, and how many
leases the rescuer has taken back (both tallied, migration 0018: counters that execution
retention does not lower). None reads more rows as the queue or the history grows.
Identity: the first process to start records its output storage and a fingerprint of its
signing secret; later ones read that record back and compare."""

from __future__ import annotations

from dataclasses import dataclass

from comfy_serverless.store.connector import Connector

__all__ = ["FleetFigures", "FleetRecord", "FleetStore"]


@dataclass(frozen=True)
class FleetFigures:
    oldest_queued_age: dict[str, float]
    failures_by_code: dict[str, int]
    lease_rescues: int


@dataclass(frozen=True)
class FleetRecord:
    """What the first process of a fleet recorded: where outputs live, which secret signs."""

    storage: str
    secret_fingerprint: str
    recorded_by: str
    recorded_at: float


class FleetStore:
    def __init__(self, connector: Connector, queries: dict[str, str]) -> None:
        self._db = connector
        self._sql = queries

    async def figures(self, now: float) -> FleetFigures:
        oldest = await self._db.fetch_all(self._sql["oldest_queued_by_priority"])
        failures = await self._db.fetch_all(self._sql["failures_by_code"])
        rescues = await self._db.fetch_one(self._sql["lease_rescues"])
        return FleetFigures(
            oldest_queued_age={str(row["priority"]): max(0.0, now - float(row["oldest"]))
                               for row in oldest if row["oldest"] is not None},
            failures_by_code={str(row["code"]): int(row["count"]) for row in failures},
            lease_rescues=int(rescues["count"]) if rescues else 0,
        )

    async def record_identity(self, proposed: FleetRecord) -> FleetRecord:
        """Record `proposed` unless a fleet identity exists; returns the one in force."""
        await self._db.execute(self._sql["record_fleet_identity"], {
            "storage": proposed.storage, "secret_fingerprint": proposed.secret_fingerprint,
            "recorded_by": proposed.recorded_by, "recorded_at": proposed.recorded_at})
        row = await self._db.fetch_one(self._sql["fleet_identity"])
        if row is None:
            return proposed
        return FleetRecord(str(row["storage"]), str(row["secret_fingerprint"]),
                           str(row["recorded_by"]), float(row["recorded_at"]))

    async def forget_identity(self) -> bool:
        """Drop the recorded identity (after a deliberate change); the next start records."""
        return await self._db.execute(self._sql["forget_fleet_identity"]) > 0
