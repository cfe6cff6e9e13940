"""Rows the conformance tests (and the stream bench) start from: a key, and executions
inserted without admission."""

from __future__ import annotations

import time

from comfy_serverless.auth.keys import issue_key
from comfy_serverless.executions.submission import new_execution_id
from comfy_serverless.store.options import ExecutionOptions
from comfy_serverless.store.records import ApiKeyRecord, NewExecution
from comfy_serverless.store.store import Store

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
