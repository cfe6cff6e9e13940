"""The retention side of the store: outputs whose retention has run out, and their deletion;
finished executions past the execution retention, deleted in batches."""

from __future__ import annotations

from comfy_serverless.store.connector import Connector
from comfy_serverless.store.records import OutputRecord

__all__ = ["ExecutionRetention", "OutputRetention"]


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


class ExecutionRetention:
    """Deletes finished executions older than the execution retention, with their rows. The
    request paths do not need it to stay fast (their queries read indexes and tallies), but
    the tables' size on disk does."""

    def __init__(self, connector: Connector, queries: dict[str, str]) -> None:
        self._db = connector
        self._sql = queries

    async def delete_finished_before(self, before: float, limit: int) -> int:
        """Delete up to `limit` executions that finished before `before`, oldest first, and
        say how many went. One statement per batch: a short transaction, however long the
        backlog. Executions with an output file still stored, or a webhook not yet
        delivered, are kept (see queries/retention.sql)."""
        return await self._db.execute(self._sql["delete_expired_executions"],
                                      {"before": before, "limit": limit})
