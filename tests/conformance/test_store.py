"""The store's behaviour, run against SQLite and PostgreSQL alike."""

from __future__ import annotations

import asyncio
import time

from comfy_serverless.store.records import (
    ExecutionRecord,
    LogEntry,
    OutputRecord,
    ProgressSnapshot,
    WorkerState,
)
from comfy_serverless.store.store import Store
from tests.helpers import wait_for
from workloads.rows import add_execution, add_key


async def _truthy(value: object) -> bool:
    return bool(value)

async def test_migrations_apply_once(store: Store) -> None:
    assert await store.migrate() == []


async def test_api_key_round_trip(store: Store) -> None:
    key = await add_key(store)
    found = await store.api_key_by_prefix(key.prefix)
    assert found == key
    await store.touch_api_key(key.id, 123.0)
    touched = await store.api_key_by_prefix(key.prefix)
    assert touched is not None
    assert touched.last_used_at == 123.0


async def test_claim_order_is_priority_then_submission(store: Store) -> None:
    key = await add_key(store)
    now = time.time()
    low = await add_execution(store, key, priority=1, submitted_at=now - 30)
    first_high = await add_execution(store, key, priority=9, submitted_at=now - 20)
    second_high = await add_execution(store, key, priority=9, submitted_at=now - 10)
    claimed = [await store.claim_next("w1", 30) for _ in range(4)]
    assert [c.id if c else None for c in claimed] == [first_high, second_high, low, None]
    assert all(c.status == "processing" and c.attempt == 1 for c in claimed if c)


async def test_queue_position_follows_claim_order(store: Store) -> None:
    key = await add_key(store)
    now = time.time()
    ids = [await add_execution(store, key, priority=p, submitted_at=now + i)
           for i, p in enumerate([5, 10, 5])]
    positions = []
    for execution_id in ids:
        execution = await store.execution(execution_id)
        assert execution is not None
        positions.append(await store.queue_position(execution))
    assert positions == [2, 1, 3]


async def test_concurrent_claims_take_each_job_once(store: Store) -> None:
    key = await add_key(store)
    submitted = {await add_execution(store, key) for _ in range(5)}
    claims = await asyncio.gather(*(store.claim_next(f"w{i}", 30) for i in range(10)))
    claimed = [c.id for c in claims if c is not None]
    assert sorted(claimed) == sorted(submitted)


async def test_cancel_guards_every_later_worker_write(store: Store) -> None:
    key = await add_key(store)
    execution_id = await add_execution(store, key)
    claimed = await store.claim_next("w1", 30)
    assert claimed is not None
    cancelled = await store.cancel(execution_id, key.id, "user_requested", time.time())
    assert cancelled is not None
    assert cancelled.status == "cancelled"
    lease = claimed.lease
    snapshot = ProgressSnapshot(0.5, "KSampler", "3", 1, 2, 0)
    assert not await store.record_progress(lease, snapshot)
    assert not await store.complete(lease, [], snapshot, 1.0)
    assert not await store.fail(lease, {"message": "x"}, 1.0)
    assert not await store.still_owns(lease)
    final = await store.execution(execution_id)
    assert final is not None
    assert final.status == "cancelled"
    assert await store.cancel(execution_id, key.id, "user_requested", time.time()) is None


async def test_cancel_is_scoped_to_the_owningadd_key(store: Store) -> None:
    owner, other = await add_key(store), await add_key(store)
    execution_id = await add_execution(store, owner)
    assert await store.cancel(execution_id, other.id, "user_requested", time.time()) is None
    assert await store.execution_for_key(execution_id, other.id) is None
    assert await store.execution_for_key(execution_id, owner.id) is not None


async def test_complete_records_outputs_and_log_together(store: Store) -> None:
    key = await add_key(store)
    execution_id = await add_execution(store, key)
    claimed = await store.claim_next("w1", 30)
    assert claimed is not None
    output = OutputRecord(
        id="out_1", execution_id=execution_id, node_id="9", output_type="IMAGE",
        intermediate=False, filename="a.png", content_type="image/png", size_bytes=10,
        width=8, height=8, format="PNG", storage_provider="local", storage_bucket=None,
        storage_key=f"outputs/{execution_id}/a.png", created_at=time.time(),
    )
    done = ProgressSnapshot(1.0, None, None, 20, 20, 1)
    log = [LogEntry(time.time(), "node_completed", "9", "SaveImage completed", {"d": 1})]
    assert await store.complete(claimed.lease, [output], done, 2.5, log)
    final = await store.execution(execution_id)
    assert final is not None
    assert (final.status, final.progress, final.completed_nodes, final.gpu_time) == (
        "completed", 1.0, 1, 2.5)
    assert await store.outputs(execution_id) == [output]
    events = [entry.event for entry in await store.events(execution_id)]
    assert events == ["execution_queued", "node_completed"]


async def test_requeue_waits_for_not_before_and_counts_attempts(store: Store) -> None:
    key = await add_key(store)
    execution_id = await add_execution(store, key, max_attempts=3)
    first = await store.claim_next("w1", 30)
    assert first is not None
    assert await store.requeue(first.lease, {"message": "engine lost"}, time.time() - 1)
    assert await store.requeue(first.lease, {}, 0) is False, "a lease is used once"
    second = await store.claim_next("w2", 30)
    assert second is not None
    assert (second.id, second.attempt) == (execution_id, 2)
    assert await store.requeue(second.lease, {"message": "again"}, time.time() + 60)
    assert await store.claim_next("w3", 30) is None, "not before its backoff has passed"
    waiting = await store.execution(execution_id)
    assert waiting is not None
    assert waiting.status == "queued"
    assert waiting.error == {"message": "again"}


async def _claimed_by_w1(store: Store) -> ExecutionRecord:
    """A new execution, claimed by worker w1."""
    await add_execution(store, await add_key(store))
    claimed = await store.claim_next("w1", 30)
    assert claimed is not None
    return claimed


async def test_progress_is_written_only_by_the_lease_holder(store: Store) -> None:
    claimed = await _claimed_by_w1(store)
    snapshot = ProgressSnapshot(0.25, "KSampler", "3", 5, 20, 1)
    assert await store.record_progress(claimed.lease, snapshot)
    stranger = type(claimed.lease)(claimed.id, "w2", claimed.attempt)
    assert not await store.record_progress(stranger, snapshot)
    assert await store.renew_lease(claimed.lease, 30)
    assert not await store.renew_lease(stranger, 30)
    current = await store.execution(claimed.id)
    assert current is not None
    assert (current.progress, current.current_node, current.current_step) == (0.25, "KSampler", 5)


async def test_average_processing_time_by_signature(store: Store) -> None:
    key = await add_key(store)
    assert await store.average_processing_time("sig") is None
    await add_execution(store, key)
    claimed = await store.claim_next("w1", 30)
    assert claimed is not None
    assert await store.complete(claimed.lease, [], ProgressSnapshot(1, None, None, None, None, 1),
                                0.1)
    average = await store.average_processing_time("sig")
    assert average is not None
    assert average >= 0
    assert await store.average_processing_time("other") is None
    assert await store.average_processing_time(None) == average


async def _lease_expired(store: Store, execution_id: str) -> None:
    async def expired() -> bool:
        leases = await store.expired_leases(time.time())
        return execution_id in [lease.execution_id for lease in leases]

    await wait_for(expired, timeout=5, interval=0.01, what="the lease to expire")


async def test_an_expired_lease_is_rescued_and_the_zombie_cannot_write(store: Store) -> None:
    from comfy_serverless.queue.rescuer import Rescuer

    key = await add_key(store)
    execution_id = await add_execution(store, key, max_attempts=2)
    zombie = await store.claim_next("w-dead", 0.05)
    assert zombie is not None
    alive = await add_execution(store, key)
    healthy = await store.claim_next("w-alive", 60)
    assert healthy is not None
    assert healthy.id == alive
    await _lease_expired(store, zombie.id)
    report = await Rescuer(store).run_once()
    assert (report.requeued, report.failed) == ([execution_id], [])
    rescued = await store.execution(execution_id)
    assert rescued is not None
    assert rescued.error is not None
    assert rescued.error["details"]["error_type"] == "WORKER_LOST"
    assert rescued.not_before is not None
    snapshot = ProgressSnapshot(1.0, None, None, None, None, 1)
    assert not await store.record_progress(zombie.lease, snapshot)
    assert not await store.complete(zombie.lease, [], snapshot, 1.0)
    assert not await store.renew_lease(zombie.lease, 30)
    untouched = await store.execution(alive)
    assert untouched is not None
    assert untouched.status == "processing"


async def test_a_lease_rescued_with_no_attempts_left_fails(store: Store) -> None:
    from comfy_serverless.queue.rescuer import Rescuer

    key = await add_key(store)
    execution_id = await add_execution(store, key, max_attempts=1)
    assert await store.claim_next("w-dead", 0.01) is not None
    await _lease_expired(store, execution_id)
    given_up: list[str] = []

    async def on_failed(execution: ExecutionRecord) -> None:
        given_up.append(execution.id)

    report = await Rescuer(store, on_failed=on_failed).run_once()
    assert report.failed == [execution_id]
    assert given_up == [execution_id], "told, so that its staged inputs can be deleted"
    failed = await store.execution(execution_id)
    assert failed is not None
    assert failed.status == "failed"
    assert failed.error is not None
    assert failed.error["retry_info"]["remaining_retries"] == 0
    assert "execution_rescued" in [entry.event for entry in await store.events(execution_id)]


async def test_hand_back_returns_the_attempt(store: Store) -> None:
    key = await add_key(store)
    execution_id = await add_execution(store, key)
    claimed = await store.claim_next("w1", 30)
    assert claimed is not None
    assert await store.hand_back(claimed.lease)
    again = await store.claim_next("w2", 30)
    assert again is not None
    assert (again.id, again.attempt) == (execution_id, 1)


async def test_other_processes_are_woken_on_submit_and_cancel(store: Store) -> None:
    """PostgreSQL delivers LISTEN/NOTIFY across processes; SQLite (one node) delivers none."""
    woken = asyncio.Event()
    cancelled: list[str] = []
    key = await add_key(store)
    async with store.listen(on_work=woken.set, on_cancel=cancelled.append):
        execution_id = await add_execution(store, key)
        assert await store.cancel(execution_id, key.id, "user_requested", time.time())
        if store.dialect == "postgres":
            await asyncio.wait_for(woken.wait(), 5)
            await wait_for(lambda: _truthy(cancelled), timeout=5, what="the cancel notification")
            assert cancelled == [execution_id]
        else:
            assert not woken.is_set()


async def test_a_priority_10_submitted_after_20_priority_1_runs_next(store: Store) -> None:
    key = await add_key(store)
    now = time.time()
    for index in range(20):
        await add_execution(store, key, priority=1, submitted_at=now - 100 + index)
    urgent = await add_execution(store, key, priority=10, submitted_at=now)
    claimed = await store.claim_next("w1", 30)
    assert claimed is not None
    assert claimed.id == urgent


async def test_aging_lifts_a_long_waiting_execution_to_the_front(store: Store) -> None:
    key = await add_key(store)
    now = time.time()
    patient = await add_execution(store, key, priority=1, submitted_at=now - 1000)
    fresh = await add_execution(store, key, priority=9, submitted_at=now)
    raised = [await store.age_queued(now, aging_seconds=60) for _ in range(12)]
    assert raised == [1] * 9 + [0] * 3, "one level per pass, never past 10"
    record = await store.execution(patient)
    assert record is not None
    assert (record.priority, record.requested_priority) == (10, 1)
    first = await store.claim_next("w1", 30)
    assert first is not None
    assert first.id == patient
    young = await store.execution(fresh)
    assert young is not None
    assert young.priority == 9, "a fresh execution has not aged"


async def test_queue_figures_come_from_the_rows(store: Store) -> None:
    key = await add_key(store)
    now = time.time()
    await add_execution(store, key, priority=7, submitted_at=now - 20)
    await add_execution(store, key, priority=7, submitted_at=now - 10)
    await add_execution(store, key, priority=2, submitted_at=now - 4)
    claimed = await store.claim_next("w1", 30)
    assert claimed is not None
    assert await store.queue_totals() == {"queued": 2, "processing": 1}
    breakdown = await store.queue_breakdown(time.time())
    assert [(priority, count) for priority, count, _ in breakdown] == [(7, 1), (2, 1)]
    wait, processing = await store.recent_averages(now - 60)
    assert wait is not None
    assert 19 < wait < 22
    assert processing is None
    await store.heartbeat_worker(WorkerState("w1", "busy", "T4", {"devices": []}, claimed.id))
    [worker] = await store.live_workers(now - 60)
    assert (worker.id, worker.state, worker.gpu_type) == ("w1", "busy", "T4")


async def test_metric_counts_and_durations(store: Store) -> None:
    key = await add_key(store)
    await add_execution(store, key, priority=4, submitted_at=time.time() - 3)
    await add_execution(store, key, priority=4)
    claimed = await store.claim_next("w1", 30)
    assert claimed is not None
    assert await store.complete(claimed.lease, [], ProgressSnapshot(1, None, None, None, None, 1),
                                0.1)
    counts = await store.metric_counts()
    assert counts["executions"] == {"completed": 1, "queued": 1}
    assert counts["queue_depth"] == {"4": 1}
    assert counts["model_loads"] == {"all": 0}
    [(wait, work)] = await store.completed_durations()
    assert wait >= 3
    assert work >= 0


async def test_gpu_usage_is_kept_with_progress_and_outcome(store: Store) -> None:
    claimed = await _claimed_by_w1(store)
    snapshot = ProgressSnapshot(0.5, "KSampler", "3", 5, 10, 1)
    so_far = {"gpu_utilization": 0.5, "memory_efficiency": 0.25}
    assert await store.record_progress(claimed.lease, snapshot, engine_metrics=so_far)
    assert await store.record_progress(claimed.lease, snapshot)  # no sample: kept
    running = await store.execution(claimed.id)
    assert running is not None
    assert running.engine_metrics == so_far
    final = {"gpu_utilization": 0.75, "memory_efficiency": 0.5}
    assert await store.complete(claimed.lease, [], ProgressSnapshot(1, None, None, None, None, 1),
                                1.0, engine_metrics=final)
    done = await store.execution(claimed.id)
    assert done is not None
    assert done.engine_metrics == final



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
