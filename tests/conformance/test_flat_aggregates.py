"""The maintained tallies (migration 0016) and the bounded queue position, on SQLite and
PostgreSQL: the figures the queue status and /metrics read from the tallies equal a count
of the rows themselves, whatever changed them (submit, claim, completion, cancel, aging,
deletion) and whether or not PostgreSQL's deltas were folded yet."""

from __future__ import annotations

import time

import pytest

from comfy_serverless.queue import tallies
from comfy_serverless.queue.tallies import TallyFolder
from comfy_serverless.store import executions as execution_store
from comfy_serverless.store.records import ProgressSnapshot
from comfy_serverless.store.store import Store
from workloads.rows import add_execution, add_key


async def _counted(store: Store) -> dict[tuple[str, int], tuple[int, float]]:
    """(status, priority) -> (count, sum of submit times of the queued ones: only theirs is
    kept), from the executions themselves."""
    rows = await store.connector.fetch_all(
        "SELECT status, priority, COUNT(*) AS count, "
        "SUM(CASE WHEN status = 'queued' THEN submitted_at ELSE 0 END) AS submitted "
        "FROM executions GROUP BY status, priority")
    return {(str(r["status"]), int(r["priority"])): (int(r["count"]), float(r["submitted"]))
            for r in rows}


async def _tallied(store: Store) -> dict[tuple[str, int], tuple[int, float]]:
    return {(t.status, t.priority): (t.count, t.submitted_ms_sum / 1000)
            for t in await store.metrics.status_tallies()}


async def _assert_tallies_match(store: Store) -> None:
    counted, tallied = await _counted(store), await _tallied(store)
    assert counted.keys() == tallied.keys()
    for group, (count, submitted) in counted.items():
        assert tallied[group][0] == count
        assert tallied[group][1] == pytest.approx(submitted, abs=0.001 * count)


async def _busy_queue(store: Store) -> None:
    """Executions in every state: queued at two priorities, claimed, completed, cancelled,
    aged, deleted."""
    key, now = await add_key(store), time.time()
    for index in range(6):
        await add_execution(store, key, priority=3 + index % 2, submitted_at=now - 10 + index)
    first = await store.claims.claim_next("w1", 30)
    second = await store.claims.claim_next("w1", 30)
    assert first is not None
    assert second is not None
    assert await store.claims.complete(first.lease, [],
                                       ProgressSnapshot(1, None, None, None, None, 1), 0.1)
    queued = await add_execution(store, key, priority=3)
    assert await store.executions.cancel(queued, key.id, "user", now) is not None
    await store.connector.execute(
        "UPDATE executions SET priority = priority + 2 WHERE status = 'queued' AND priority = 3")
    for event in ("model_loaded", "model_loaded", "execution_started"):
        await store.connector.execute(
            "INSERT INTO execution_events (execution_id, at, event, message) "
            "VALUES (:id, :at, :event, 'm')", {"id": first.id, "at": now, "event": event})
    doomed = await add_execution(store, key, priority=9)
    await store.connector.execute("DELETE FROM executions WHERE id = :id", {"id": doomed})


async def test_the_tallies_count_what_the_rows_hold(store: Store) -> None:
    await _busy_queue(store)
    await _assert_tallies_match(store)
    assert (await store.metrics.metric_counts())["model_loads"] == {"all": 2}


async def test_folding_the_deltas_changes_no_figure(store: Store) -> None:
    await _busy_queue(store)
    before = (await store.metrics.metric_counts(), await store.metrics.duration_histograms())
    folded = await store.metrics.fold_tallies()
    assert (folded > 0) == (store.dialect == "postgres")
    assert await store.metrics.fold_tallies() == 0, "nothing left to fold"
    assert (await store.metrics.metric_counts(), await store.metrics.duration_histograms()
            ) == before
    await _assert_tallies_match(store)


async def test_the_folder_folds_in_batches_and_changes_no_figure(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tallies, "TALLY_FOLD_BATCH", 2)
    await _busy_queue(store)
    before = (await store.metrics.metric_counts(), await store.metrics.duration_histograms())
    folder = TallyFolder(store)
    assert await folder.run_once() is (store.dialect == "postgres"), "a full first batch"
    batches = 1
    while await folder.run_once():  # each pass folds one more batch of two
        batches += 1
    assert batches >= (2 if store.dialect == "postgres" else 1)
    assert await store.metrics.fold_tallies() == 0
    assert (await store.metrics.metric_counts(), await store.metrics.duration_histograms()
            ) == before


async def test_the_queue_breakdown_averages_the_wait_of_the_queued(store: Store) -> None:
    key, now = await add_key(store), time.time()
    await add_execution(store, key, priority=7, submitted_at=now - 30)
    await add_execution(store, key, priority=7, submitted_at=now - 10)
    await add_execution(store, key, priority=2, submitted_at=now - 4)
    await store.metrics.fold_tallies()
    await add_execution(store, key, priority=2, submitted_at=now - 2)
    breakdown = await store.metrics.queue_breakdown(now)
    assert [(p, c) for p, c, _ in breakdown] == [(7, 2), (2, 2)]
    assert [round(wait, 3) for _, _, wait in breakdown] == [20.0, 3.0]
    assert await store.metrics.queue_totals() == {"queued": 4}


async def test_queue_position_is_exact_up_to_the_bound_and_bound_plus_one_beyond(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(execution_store, "QUEUE_POSITION_BOUND", 3)
    key, now = await add_key(store), time.time()
    # Claim order: priority first, then submit time, then id (two share a submit time).
    ids = [await add_execution(store, key, priority=9, submitted_at=now - 50),
           await add_execution(store, key, priority=5, submitted_at=now - 40)]
    ids += sorted([await add_execution(store, key, priority=5, submitted_at=now - 30)
                   for _ in range(2)])
    ids += [await add_execution(store, key, priority=5, submitted_at=now - 20),
            await add_execution(store, key, priority=1, submitted_at=now - 90)]
    positions = []
    for execution_id in ids:
        execution = await store.executions.execution(execution_id)
        assert execution is not None
        positions.append(await store.executions.queue_position(execution))
    assert positions == [1, 2, 3, 4, 4, 4]
