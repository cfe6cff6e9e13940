"""The executions' side of the store: the direct insert, reads (by id, for a key, queue
position, log, outputs) and cancelling. Submission with its limits goes through
AccessStore.admit; the worker's writes are in claims.py."""

from __future__ import annotations

from comfy_serverless.store.connector import Connector
from comfy_serverless.store.records import ExecutionRecord, LogEntry, NewExecution, OutputRecord
from comfy_serverless.store.writing import CANCEL_CHANNEL, LeaseLost, insert_events, notify

__all__ = ["QUEUE_POSITION_BOUND", "ExecutionStore"]

# queue_position counts at most this many executions ahead: positions up to the bound are
# exact, and every execution further back reads QUEUE_POSITION_BOUND + 1 ("at least that").
# A status read then costs the same with 100 or 100,000 queued. 100: a client shows "#37",
# not "#4,211"; and a larger bound makes a deep queue's status read cost more than a
# shallow one's (1,000 index entries read cost 0.1 ms more per read than 100, bench.flat).
QUEUE_POSITION_BOUND = 100


class ExecutionStore:
    def __init__(self, connector: Connector, queries: dict[str, str]) -> None:
        self._db = connector
        self._sql = queries

    async def create_execution(self, execution: NewExecution) -> None:
        """Insert without admission (no limits, no idempotency): for the benchmarks and the
        tests' setup. One statement: a trigger logs `execution_queued` and (PostgreSQL) wakes
        workers."""
        await self._db.execute(self._sql["insert_execution"], execution.params())

    async def execution_for_key(self, execution_id: str, api_key_id: str) -> ExecutionRecord | None:
        row = await self._db.fetch_one(
            self._sql["execution_for_key"], {"id": execution_id, "api_key_id": api_key_id}
        )
        return ExecutionRecord.from_row(row) if row else None

    async def execution(self, execution_id: str) -> ExecutionRecord | None:
        row = await self._db.fetch_one(self._sql["execution_by_id"], {"id": execution_id})
        return ExecutionRecord.from_row(row) if row else None

    async def queue_position(self, execution: ExecutionRecord) -> int:
        """1-based position among queued executions in claim order (0 once it has left):
        exact up to QUEUE_POSITION_BOUND, and QUEUE_POSITION_BOUND + 1 for any execution
        with QUEUE_POSITION_BOUND or more ahead of it."""
        if execution.status != "queued":
            return 0
        row = await self._db.fetch_one(
            self._sql["queue_position"],
            {"id": execution.id, "priority": execution.priority,
             "submitted_at": execution.submitted_at, "bound": QUEUE_POSITION_BOUND},
        )
        return int(row["ahead"]) + 1 if row else 1

    async def events(self, execution_id: str) -> list[LogEntry]:
        rows = await self._db.fetch_all(
            self._sql["events_for_execution"], {"execution_id": execution_id}
        )
        return [LogEntry.from_row(row) for row in rows]

    async def outputs(self, execution_id: str) -> list[OutputRecord]:
        rows = await self._db.fetch_all(
            self._sql["outputs_for_execution"], {"execution_id": execution_id}
        )
        return [OutputRecord.from_row(row) for row in rows]

    async def cancel(
        self, execution_id: str, api_key_id: str, reason: str, now: float
    ) -> ExecutionRecord | None:
        """Cancel a queued or processing execution; None if it was not cancellable."""
        try:
            async with self._db.transaction() as tx:
                # The log entry goes first: the status change is the last write of a
                # finishing transaction, so the event stream's `end` comes after it.
                await insert_events(tx, self._sql, execution_id, [LogEntry(
                    now, "execution_cancelled", None, f"Execution cancelled ({reason})")])
                row = await tx.fetch_one(
                    self._sql["cancel_execution"],
                    {"id": execution_id, "api_key_id": api_key_id, "reason": reason, "now": now},
                )
                if row is None:
                    raise LeaseLost
                await notify(tx, self._sql, CANCEL_CHANNEL, execution_id)
        except LeaseLost:
            return None
        return ExecutionRecord.from_row(row)
