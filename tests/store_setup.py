"""Writes that only tests make, run on a store's own database: state no service path
creates directly (a month's usage, log entries outside any attempt)."""

from __future__ import annotations

from collections.abc import Sequence

from comfy_serverless.store.records import LogEntry
from comfy_serverless.store.sql_loader import load_queries
from comfy_serverless.store.store import Store
from comfy_serverless.store.writing import insert_events


async def set_key_usage(store: Store, key_id: str, period: str, executions: int) -> None:
    """Set a key's count of executions for a month, as if it had submitted them."""
    queries = load_queries(store.dialect)
    params = {"api_key_id": key_id, "period": period}
    async with store.connector.transaction() as tx:
        await tx.execute(queries["ensure_key_usage"], params)
        await tx.execute(queries["set_key_usage"], {**params, "executions": executions})


async def append_log(store: Store, execution_id: str, log: Sequence[LogEntry]) -> None:
    """Add entries to an execution's log without a lease (a writer racing the worker's)."""
    async with store.connector.transaction() as tx:
        await insert_events(tx, load_queries(store.dialect), execution_id, log)
