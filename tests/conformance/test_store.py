"""The store's behaviour, run against SQLite and PostgreSQL alike: keys, reads, cancelling,
wake-ups, figures. The worker's side (claims, leases, outcomes) is in test_claims_store.py."""

from __future__ import annotations

import asyncio
import time

from comfy_serverless.store.records import ProgressSnapshot, WorkerState
from comfy_serverless.store.store import Store
from tests.helpers import wait_for
from workloads.rows import add_execution, add_key


async def _truthy(value: object) -> bool:
    return bool(value)


async def test_migrations_apply_once(store: Store) -> None:
    assert await store.migrate() == []


async def test_api_key_round_trip(store: Store) -> None:
    key = await add_key(store)
    found = await store.access.api_key_by_prefix(key.prefix)
    assert found == key
    await store.access.touch_api_key(key.id, 123.0)
    touched = await store.access.api_key_by_prefix(key.prefix)
    assert touched is not None
    assert touched.last_used_at == 123.0


async def test_queue_position_follows_claim_order(store: Store) -> None:
    key = await add_key(store)
    now = time.time()
    ids = [await add_execution(store, key, priority=p, submitted_at=now + i)
           for i, p in enumerate([5, 10, 5])]
    positions = []
    for execution_id in ids:
        execution = await store.executions.execution(execution_id)
        assert execution is not None
        positions.append(await store.executions.queue_position(execution))
    assert positions == [2, 1, 3]


async def test_cancel_is_scoped_to_the_owning_key(store: Store) -> None:
    owner, other = await add_key(store), await add_key(store)
    execution_id = await add_execution(store, owner)
    assert await store.executions.cancel(execution_id, other.id, "user_requested",
                                         time.time()) is None
    assert await store.executions.execution_for_key(execution_id, other.id) is None
    assert await store.executions.execution_for_key(execution_id, owner.id) is not None


async def test_average_processing_time_by_signature(store: Store) -> None:
    key = await add_key(store)
    assert await store.metrics.average_processing_time("sig") is None
    await add_execution(store, key)
    claimed = await store.claims.claim_next("w1", 30)
    assert claimed is not None
    assert await store.claims.complete(claimed.lease, [],
                                       ProgressSnapshot(1, None, None, None, None, 1),
                                       0.1)
    average = await store.metrics.average_processing_time("sig")
    assert average is not None
    assert average >= 0
    assert await store.metrics.average_processing_time("other") is None
    assert await store.metrics.average_processing_time(None) == average


async def test_other_processes_are_woken_on_submit_and_cancel(store: Store) -> None:
    """PostgreSQL delivers LISTEN/NOTIFY across processes; SQLite (one node) delivers none."""
    woken = asyncio.Event()
    cancelled: list[str] = []
    key = await add_key(store)
    async with store.listen(on_work=woken.set, on_cancel=cancelled.append):
        execution_id = await add_execution(store, key)
        assert await store.executions.cancel(execution_id, key.id, "user_requested", time.time())
        if store.dialect == "postgres":
            await asyncio.wait_for(woken.wait(), 5)
            await wait_for(lambda: _truthy(cancelled), timeout=5, what="the cancel notification")
            assert cancelled == [execution_id]
        else:
            assert not woken.is_set()


async def test_queue_figures_come_from_the_rows(store: Store) -> None:
    key = await add_key(store)
    now = time.time()
    await add_execution(store, key, priority=7, submitted_at=now - 20)
    await add_execution(store, key, priority=7, submitted_at=now - 10)
    await add_execution(store, key, priority=2, submitted_at=now - 4)
    claimed = await store.claims.claim_next("w1", 30)
    assert claimed is not None
    assert await store.metrics.queue_totals() == {"queued": 2, "processing": 1}
    breakdown = await store.metrics.queue_breakdown(time.time())
    assert [(priority, count) for priority, count, _ in breakdown] == [(7, 1), (2, 1)]
    wait, processing = await store.metrics.recent_averages(now - 60)
    assert wait is not None
    assert 19 < wait < 22
    assert processing is None
    await store.workers.heartbeat_worker(
        WorkerState("w1", "busy", "T4", {"devices": []}, claimed.id))
    [worker] = await store.workers.live_workers(now - 60)
    assert (worker.id, worker.state, worker.gpu_type) == ("w1", "busy", "T4")


async def test_metric_counts_and_durations(store: Store) -> None:
    key = await add_key(store)
    await add_execution(store, key, priority=4, submitted_at=time.time() - 3)
    await add_execution(store, key, priority=4)
    claimed = await store.claims.claim_next("w1", 30)
    assert claimed is not None
    assert await store.claims.complete(claimed.lease, [],
                                       ProgressSnapshot(1, None, None, None, None, 1),
                                       0.1)
    counts = await store.metrics.metric_counts()
    assert counts["executions"] == {"completed": 1, "queued": 1}
    assert counts["queue_depth"] == {"4": 1}
    assert counts["model_loads"] == {"all": 0}
    waits, works = await store.metrics.duration_histograms()
    assert waits.count == works.count == 1
    assert dict(waits.buckets)[1.0] == 0, "waited at least 3 s"
    assert dict(waits.buckets)[3600.0] == 1
    assert waits.total >= 3
    assert works.buckets[-1] == (3600.0, 1)
    assert works.total >= 0


async def test_a_registration_racing_an_uncommitted_one_never_passes_the_cap(
        store: Store) -> None:
    """Another POST has inserted the key's 10th endpoint and not yet committed: a second
    one must wait for it and then be refused, never see 9 and make 11."""
    key = await add_key(store)
    for n in range(9):
        assert await store.webhooks.register(key.id, f"https://h{n}.example/", None, ["*"], 10)
    outbox = store.webhooks
    async with outbox._db.transaction() as first:
        assert await first.execute(outbox._sql["insert_endpoint"], {
            "id": "whe_first", "api_key_id": key.id, "url": "https://first.example/",
            "destination": "https://first.example:443", "secret": None, "events": '["*"]',
            "now": time.time(), "max_endpoints": 10}) == 1
        racing = asyncio.create_task(
            outbox.register(key.id, "https://second.example/", None, ["*"], 10))
        await asyncio.wait({racing}, timeout=1.0)  # it waits for the first, or it raced
    assert await racing is None, "a concurrent registration passed the cap"
    assert len(await store.webhooks.endpoints(key.id)) == 10
