"""What the execution writers (executions.py, claims.py) share: the notification channels,
the rollback signal of a guarded write, and the execution log's insert.

A worker write is guarded by a Lease (execution id, lease owner, attempt): a write that no
longer matches changes nothing, and the writer raises LeaseLost inside its transaction so
that the log entries written before it roll back too.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from comfy_serverless.store.connector import Session
from comfy_serverless.store.records import LogEntry

__all__ = [
    "CANCEL_CHANNEL",
    "WORK_CHANNEL",
    "LeaseLost",
    "dumps",
    "insert_events",
    "notify",
]

WORK_CHANNEL = "comfy_serverless_work"  # also named in migration 0004's trigger
CANCEL_CHANNEL = "comfy_serverless_cancel"


class LeaseLost(Exception):
    """Raised inside a transaction to roll it back when the guarded update matched nothing."""


def dumps(value: Any) -> str | None:
    """A JSON column's text; None stays NULL."""
    return None if value is None else json.dumps(value)


async def notify(tx: Session, queries: dict[str, str], channel: str, payload: str) -> None:
    """Sent when the transaction commits, so a woken process sees the row."""
    await tx.fetch_one(queries["notify"], {"channel": channel, "payload": payload})


async def insert_events(tx: Session, queries: dict[str, str], execution_id: str,
                        log: Sequence[LogEntry]) -> None:
    """Append entries to an execution's log, in the caller's transaction."""
    await tx.execute_many(queries["insert_event"],
                          [_event_params(execution_id, entry) for entry in log])


def _event_params(execution_id: str, entry: LogEntry) -> dict[str, Any]:
    return {
        "execution_id": execution_id, "at": entry.at, "event": entry.event,
        "node_id": entry.node_id, "message": entry.message, "details": dumps(entry.details),
    }
