"""Rows a store test or bench starts from: a key, executions inserted without admission, and
an output of an execution."""

from __future__ import annotations

import time

from comfy_serverless.auth.keys import issue_key
from comfy_serverless.executions.submission import new_execution_id
from comfy_serverless.store.options import ExecutionOptions
from comfy_serverless.store.records import ApiKeyRecord, NewExecution, OutputRecord
from comfy_serverless.store.store import Store

__all__ = ["GRAPH", "add_execution", "add_key", "output_row"]

GRAPH = {"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8}}}


async def add_key(store: Store) -> ApiKeyRecord:
    issued = issue_key("secret", "basic")
    await store.access.create_api_key(issued.record)
    return issued.record


async def add_execution(store: Store, key: ApiKeyRecord, *, priority: int = 5,
                        submitted_at: float | None = None, max_attempts: int = 1) -> str:
    execution = NewExecution(
        id=new_execution_id(), api_key_id=key.id, priority=priority, workflow=GRAPH,
        options=ExecutionOptions(), signature="sig", webhook_url=None, client_id=None,
        submitted_at=submitted_at or time.time(), max_attempts=max_attempts, total_nodes=1,
    )
    await store.executions.create_execution(execution)
    return execution.id


def output_row(execution_id: str, number: int, *, intermediate: bool = False) -> OutputRecord:
    """The output numbered `number` of the execution: a small PNG on local storage."""
    return OutputRecord(
        id=f"out_{execution_id}_{number}", execution_id=execution_id, node_id="9",
        output_type="PREVIEW" if intermediate else "IMAGE", intermediate=intermediate,
        filename=f"{number}.png", content_type="image/png", size_bytes=10, width=8, height=8,
        format="PNG", storage_provider="local", storage_bucket=None,
        storage_key=f"outputs/{execution_id}/{number}.png", created_at=time.time())
