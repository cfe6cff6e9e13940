"""The options column through each database: a submit's options are stored as the bytes the
dict-writing code stored, and rows that code wrote, whole or partial, read back typed."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from comfy_serverless.executions.submission import new_execution_id
from comfy_serverless.store.options import (
    ExecutionOptions,
    NotifyOptions,
    RunOptions,
    StoredDestination,
)
from comfy_serverless.store.records import NewExecution
from comfy_serverless.store.store import Store
from tests.written_options import BEFORE_DESTINATIONS, STAGED_BEFORE
from workloads.rows import add_execution, add_key


async def _stored_text(store: Store, execution_id: str) -> str:
    row = await store.connector.fetch_one("SELECT options FROM executions WHERE id = :id",
                                          {"id": execution_id})
    assert row is not None
    return str(row["options"])


async def _written_by_old_code(store: Store, options: dict[str, Any]) -> str:
    """An execution whose options column holds what an older submit (or tool) wrote."""
    execution_id = await add_execution(store, await add_key(store))
    await store.connector.execute("UPDATE executions SET options = :options WHERE id = :id",
                                  {"options": json.dumps(options), "id": execution_id})
    return execution_id


async def test_a_submit_stores_the_bytes_the_dict_code_stored(store: Store) -> None:
    execution_id = new_execution_id()
    written = STAGED_BEFORE.replace("{id}", execution_id)
    key = await add_key(store)
    await store.executions.create_execution(NewExecution(
        id=execution_id, api_key_id=key.id, priority=5, workflow={},
        options=ExecutionOptions.from_json(json.loads(written)), signature="s",
        webhook_url=None, client_id=None, submitted_at=time.time(), max_attempts=1,
        total_nodes=1))
    assert await _stored_text(store, execution_id) == written
    read = await store.executions.execution(execution_id)
    assert read is not None
    assert json.dumps(read.options.as_json()) == written


@pytest.mark.parametrize(("row", "timeout", "storage", "notify"), [
    ({}, None, StoredDestination(), NotifyOptions()),
    ({"execution_config": {"timeout": 5}, "notification_config": {"include_progress": True}},
     5, StoredDestination(), NotifyOptions(include_progress=True)),
    (BEFORE_DESTINATIONS, None,
     StoredDestination("s3", "b", None, public_access=True, retention_days=30),
     NotifyOptions(include_progress=True)),
])
async def test_rows_the_dict_code_wrote_read_back_typed(
        store: Store, row: dict[str, Any], timeout: int | None, storage: StoredDestination,
        notify: NotifyOptions) -> None:
    execution_id = await _written_by_old_code(store, row)
    read = await store.executions.execution(execution_id)
    assert read is not None
    assert read.options.run.timeout == timeout
    assert read.options.output.storage == storage
    assert read.options.notify == notify
    assert read.options.run.enable_optimization is RunOptions().enable_optimization
