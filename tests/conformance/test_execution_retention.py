"""Execution retention (execution_retention_days), run by housekeeping on SQLite and
PostgreSQL: finished executions older than the retention go with their rows, in bounded
batches; what is still queued, recent, holding a stored output file or an undelivered
webhook stays."""

from __future__ import annotations

import time

import pytest

from comfy_serverless.queue import housekeeping
from comfy_serverless.queue.housekeeping import Housekeeping
from comfy_serverless.store.records import ApiKeyRecord
from comfy_serverless.store.store import Store
from workloads.rows import add_execution, add_key

DAY = 24 * 3600.0


async def _finished(store: Store, key: ApiKeyRecord, finished_at: float,
                    status: str = "completed") -> str:
    execution_id = await add_execution(store, key, submitted_at=finished_at - 2)
    await store.connector.execute(
        "UPDATE executions SET status = :status, started_at = :at, finished_at = :at "
        "WHERE id = :id", {"id": execution_id, "status": status, "at": finished_at})
    return execution_id


async def _add_output(store: Store, execution_id: str, deleted_at: float | None) -> None:
    await store.connector.execute(
        "INSERT INTO outputs (id, execution_id, node_id, output_type, filename, content_type, "
        "size_bytes, storage_provider, storage_key, created_at, expires_at, deleted_at) "
        "VALUES (:id, :execution_id, '9', 'image', 'a.png', 'image/png', 1, 'local', "
        ":key, 0, 1, :deleted_at)",
        {"id": f"out_{execution_id}", "execution_id": execution_id,
         "key": f"outputs/{execution_id}/a.png", "deleted_at": deleted_at})


async def _add_webhook_event(store: Store, execution_id: str, status: str) -> None:
    await store.connector.execute(
        "INSERT INTO webhook_events (id, execution_id, url, event_type, created_at, status, "
        "max_retries, next_attempt_at) VALUES (:id, :execution_id, 'https://example.com/h', "
        "'execution.completed', 0, :status, 3, 0)",
        {"id": f"evt_{execution_id}", "execution_id": execution_id, "status": status})


async def _kept(store: Store) -> set[str]:
    rows = await store.connector.fetch_all("SELECT id FROM executions")
    return {str(row["id"]) for row in rows}


async def test_old_finished_executions_go_with_their_rows(store: Store) -> None:
    key, now = await add_key(store), time.time()
    old = [await _finished(store, key, now - 10 * DAY, status)
           for status in ("completed", "failed", "cancelled")]
    file_gone = await _finished(store, key, now - 10 * DAY)
    await _add_output(store, file_gone, deleted_at=now - DAY)
    file_stored = await _finished(store, key, now - 10 * DAY)
    await _add_output(store, file_stored, deleted_at=None)
    webhook_sent = await _finished(store, key, now - 10 * DAY)
    await _add_webhook_event(store, webhook_sent, "delivered")
    webhook_waiting = await _finished(store, key, now - 10 * DAY)
    await _add_webhook_event(store, webhook_waiting, "pending")
    recent = await _finished(store, key, now - DAY)
    queued = await add_execution(store, key, submitted_at=now - 20 * DAY)

    busy = await Housekeeping(store, execution_retention_days=7, clock=lambda: now).run_once()

    assert busy is False
    assert await _kept(store) == {file_stored, webhook_waiting, recent, queued}
    for table in ("execution_events", "outputs", "execution_stream", "webhook_events"):
        orphans = await store.connector.fetch_all(
            f"SELECT execution_id FROM {table} WHERE execution_id IN (:a, :b, :c, :d, :e)",
            {"a": old[0], "b": old[1], "c": old[2], "d": file_gone, "e": webhook_sent})
        assert orphans == [], table


async def test_zero_days_keeps_every_execution(store: Store) -> None:
    key, now = await add_key(store), time.time()
    ancient = await _finished(store, key, now - 1000 * DAY)
    await Housekeeping(store, clock=lambda: now).run_once()
    assert await _kept(store) == {ancient}


async def test_a_backlog_drains_in_bounded_batches(store: Store,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(housekeeping, "RETENTION_BATCH_SIZE", 2)
    monkeypatch.setattr(housekeeping, "RETENTION_BATCHES_PER_PASS", 2)
    key, now = await add_key(store), time.time()
    for index in range(5):
        await _finished(store, key, now - 10 * DAY + index)
    service = Housekeeping(store, execution_retention_days=1, clock=lambda: now)
    assert await service.run_once() is True, "four deleted, one may be left"
    assert len(await _kept(store)) == 1
    assert await service.run_once() is False
    assert await _kept(store) == set()
