"""The retention side of the store: outputs whose retention has run out, and their deletion."""

from __future__ import annotations

from comfy_serverless.store.connector import Connector
from comfy_serverless.store.records import OutputRecord

__all__ = ["OutputRetention"]


class OutputRetention:
    def __init__(self, connector: Connector, queries: dict[str, str]) -> None:
        self._db = connector
        self._sql = queries

    async def due(self, now: float, limit: int) -> list[OutputRecord]:
        """Outputs past their expiry that are still in storage and not waiting for a retry
        of a failed deletion, oldest expiry first."""
        rows = await self._db.fetch_all(self._sql["outputs_due_for_deletion"],
                                        {"now": now, "limit": limit})
        return [OutputRecord.from_row(row) for row in rows]

    async def mark_deleted(self, output_id: str, now: float) -> bool:
        """Record that the file is gone; False when another cleaner recorded it first."""
        return await self._db.execute(self._sql["mark_output_deleted"],
                                      {"id": output_id, "now": now}) > 0

    async def postpone(self, output_id: str, retry_at: float) -> bool:
        """A deletion failed: count the attempt, and leave the output out until `retry_at`."""
        return await self._db.execute(self._sql["postpone_output_deletion"],
                                      {"id": output_id, "retry_at": retry_at}) > 0
