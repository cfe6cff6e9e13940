"""The fleet figures of /metrics from maintained tallies (migration 0018), on SQLite and
PostgreSQL: failures by error code, lease rescues, webhook delivery attempts by outcome and
the oldest queued execution per priority equal a recount of the rows themselves (the
queries /metrics ran before), whether or not PostgreSQL's deltas were folded yet."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from comfy_serverless.store import migrations
from comfy_serverless.store.store import Store
from workloads.rows import add_execution, add_key

_FAILURES = """
SELECT COALESCE(CAST(error AS {json}) ->> 'error_code', 'UNKNOWN') AS code, COUNT(*) AS count
FROM executions WHERE status = 'failed' GROUP BY 1"""
_DELIVERIES = """
SELECT CASE WHEN status_code BETWEEN 200 AND 299 THEN 'delivered' ELSE 'failed' END AS outcome,
       COUNT(*) AS count
FROM webhook_deliveries GROUP BY 1"""
_OLDEST = """
SELECT priority, MIN(submitted_at) AS oldest
FROM executions WHERE status = 'queued' GROUP BY priority"""


async def _recounted(store: Store, now: float) -> dict[str, Any]:
    """The four figures as /metrics counted them from the rows before migration 0018."""
    db = store.connector
    json_type = "jsonb" if store.dialect == "postgres" else "TEXT"
    failures = await db.fetch_all(_FAILURES.format(json=json_type))
    rescues = await db.fetch_one(
        "SELECT COUNT(*) AS count FROM execution_events WHERE event = 'execution_rescued'")
    deliveries = await db.fetch_all(_DELIVERIES)
    oldest = await db.fetch_all(_OLDEST)
    return {
        "failures": {str(r["code"]): int(r["count"]) for r in failures},
        "rescues": int(rescues["count"]) if rescues else 0,
        "deliveries": {str(r["outcome"]): int(r["count"]) for r in deliveries},
        "oldest": {str(r["priority"]): max(0.0, now - float(r["oldest"])) for r in oldest},
    }


async def _tallied(store: Store, now: float) -> dict[str, Any]:
    figures = await store.fleet.figures(now)
    return {
        "failures": figures.failures_by_code, "rescues": figures.lease_rescues,
        "deliveries": (await store.metrics.metric_counts())["webhook_deliveries"],
        "oldest": figures.oldest_queued_age,
    }


async def _fail(store: Store, execution_id: str, error: dict[str, Any] | None) -> None:
    await store.connector.execute(
        "UPDATE executions SET status = 'failed', finished_at = :now, error = :error "
        "WHERE id = :id", {"id": execution_id, "now": time.time(),
                           "error": None if error is None else json.dumps(error)})


async def _log(store: Store, execution_id: str, event: str) -> None:
    await store.connector.execute(
        "INSERT INTO execution_events (execution_id, at, event, message) "
        "VALUES (:id, :at, :event, 'm')", {"id": execution_id, "at": time.time(), "event": event})


async def _deliveries(store: Store, execution_id: str, codes: list[int | None]) -> None:
    now = time.time()
    await store.connector.execute(
        "INSERT INTO webhook_events (id, execution_id, url, event_type, created_at, "
        "max_retries, next_attempt_at) VALUES ('evt_1', :id, 'http://127.0.0.1:9/h', "
        "'execution.failed', :now, 3, :now)", {"id": execution_id, "now": now})
    for attempt, code in enumerate(codes, start=1):
        await store.connector.execute(
            "INSERT INTO webhook_deliveries (event_id, attempt, at, status_code) "
            "VALUES ('evt_1', :attempt, :at, :code)", {"attempt": attempt, "at": now,
                                                       "code": code})


async def _fleet_history(store: Store, now: float) -> None:
    """Queued work at three priorities (one claimed), failures under two codes and none,
    rescues among other log entries, delivery attempts that succeeded, failed and erred."""
    key = await add_key(store)
    for priority, age in [(1, 300), (1, 10), (9, 60), (5, 900), (5, 5)]:
        await add_execution(store, key, priority=priority, submitted_at=now - age)
    assert await store.claims.claim_next("w1", 30) is not None
    doomed = [await add_execution(store, key, priority=3) for _ in range(4)]
    await _fail(store, doomed[0], {"error_code": "LEASE_EXPIRED", "message": "lost"})
    await _fail(store, doomed[1], {"error_code": "LEASE_EXPIRED", "message": "lost"})
    await _fail(store, doomed[2], {"error_code": "EXECUTION_ERROR", "message": "boom"})
    await _fail(store, doomed[3], {"message": "no code"})
    for event in ("execution_rescued", "model_loaded", "execution_rescued", "execution_started"):
        await _log(store, doomed[0], event)
    await _deliveries(store, doomed[1], [500, None, 200, 204, 302])


async def test_the_fleet_figures_equal_a_recount_of_the_rows(store: Store) -> None:
    now = time.time()
    assert await _tallied(store, now) == await _recounted(store, now)
    await _fleet_history(store, now)
    recounted = await _recounted(store, now)
    assert recounted["rescues"] == 2
    assert recounted["failures"] == {"LEASE_EXPIRED": 2, "EXECUTION_ERROR": 1, "UNKNOWN": 1}
    assert recounted["deliveries"] == {"delivered": 2, "failed": 3}
    assert await _tallied(store, now) == recounted
    await store.metrics.fold_tallies()
    assert await _tallied(store, now) == recounted
    assert (await store.metrics.metric_counts())["model_loads"] == {"all": 1}


async def test_the_failure_and_delivery_tallies_only_grow(store: Store) -> None:
    """Counters: deleting the rows (execution retention) takes nothing back."""
    now = time.time()
    await _fleet_history(store, now)
    before = await _tallied(store, now)
    await store.connector.execute("DELETE FROM executions WHERE status = 'failed'")
    after = await _tallied(store, now)
    assert (after["failures"], after["rescues"], after["deliveries"]) == (
        before["failures"], before["rescues"], before["deliveries"])


@pytest.fixture
async def store_before_0018(database_url: str,
                            monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Store]:
    """A store migrated without 0018 (its history is written before 0018 runs). The later
    migrations are applied, so that today's writes of that history find their columns;
    they are independent of 0018."""
    every = migrations.available_migrations
    monkeypatch.setattr(migrations, "available_migrations",
                        lambda dialect: [m for m in every(dialect) if m.version != 18])
    opened = await Store.open(database_url)
    await opened.migrate()
    monkeypatch.setattr(migrations, "available_migrations", every)
    try:
        yield opened
    finally:
        await opened.close()


async def test_the_migration_backfills_the_tallies_from_the_rows(
        store_before_0018: Store) -> None:
    store, now = store_before_0018, time.time()
    await _fleet_history(store, now)
    assert await store.migrate() == [18]
    assert await _tallied(store, now) == await _recounted(store, now)
    await _log(store, (await add_execution(store, await add_key(store))), "execution_rescued")
    assert (await _tallied(store, now))["rescues"] == 3


async def test_an_error_that_is_not_json_counts_as_unknown(store: Store) -> None:
    """The service writes JSON errors only; a row written otherwise still fails."""
    execution_id = await add_execution(store, await add_key(store))
    await store.connector.execute(
        "UPDATE executions SET status = 'failed', error = 'not json' WHERE id = :id",
        {"id": execution_id})
    assert (await store.fleet.figures(time.time())).failures_by_code == {"UNKNOWN": 1}
