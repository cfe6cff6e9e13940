"""The event stream's side of the store: the numbered rows that migration 0015's triggers
write for each execution (status, progress, log entry, stored output, end), and the
notifications (PostgreSQL) that say an execution has new ones."""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

from comfy_serverless.store.connector import Connector
from comfy_serverless.store.records import OutputRecord

__all__ = ["STREAM_CHANNEL", "ExecutionStream", "StreamRow"]

STREAM_CHANNEL = "comfy_serverless_stream"  # also named in migration 0015's trigger


@dataclass(frozen=True)
class StreamRow:
    seq: int
    at: float
    kind: str  # status | progress | log | output | preview | end
    data: dict[str, Any]


class ExecutionStream:
    def __init__(self, connector: Connector, queries: dict[str, str]) -> None:
        self._db = connector
        self._sql = queries

    async def after(self, execution_id: str, seq: int, limit: int = 500) -> list[StreamRow]:
        """The execution's rows numbered above `seq`, in order (at most `limit`)."""
        rows = await self._db.fetch_all(
            self._sql["stream_after"],
            {"execution_id": execution_id, "after": seq, "limit": limit})
        return [StreamRow(int(row["seq"]), float(row["at"]), str(row["kind"]),
                          json.loads(row["data"])) for row in rows]

    async def end_seq(self, execution_id: str) -> int | None:
        """The number of the execution's `end` row, once it has ended."""
        row = await self._db.fetch_one(self._sql["stream_end"], {"execution_id": execution_id})
        return None if row is None else int(row["seq"])

    async def output(self, execution_id: str, output_id: str) -> OutputRecord | None:
        row = await self._db.fetch_one(self._sql["output_by_id"],
                                       {"id": output_id, "execution_id": execution_id})
        return None if row is None else OutputRecord.from_row(row)

    def listen(self, on_rows: Callable[[str], None]) -> AbstractAsyncContextManager[None]:
        """Calls `on_rows(execution_id)` when any process adds rows (PostgreSQL NOTIFY; a
        no-op on SQLite, where readers poll)."""
        return self._db.listen({STREAM_CHANNEL: on_rows})
