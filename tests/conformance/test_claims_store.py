"""The claims' side of the store, run against SQLite and PostgreSQL alike: claim order,
leases, progress, outcomes, rescue, hand-back and aging."""

from __future__ import annotations

import asyncio
import time

from comfy_serverless.store.records import (
    ExecutionRecord,
    LogEntry,
    OutputRecord,
    ProgressSnapshot,
)
from comfy_serverless.store.store import Store
from tests.helpers import wait_for
from workloads.rows import add_execution, add_key


async def test_claim_order_is_priority_then_submission(store: Store) -> None:
    key = await add_key(store)
    now = time.time()
    low = await add_execution(store, key, priority=1, submitted_at=now - 30)
    first_high = await add_execution(store, key, priority=9, submitted_at=now - 20)
    second_high = await add_execution(store, key, priority=9, submitted_at=now - 10)
    claimed = [await store.claims.claim_next("w1", 30) for _ in range(4)]
    assert [c.id if c else None for c in claimed] == [first_high, second_high, low, None]
    assert all(c.status == "processing" and c.attempt == 1 for c in claimed if c)


async def test_concurrent_claims_take_each_job_once(store: Store) -> None:
    key = await add_key(store)
    submitted = {await add_execution(store, key) for _ in range(5)}
    claims = await asyncio.gather(*(store.claims.claim_next(f"w{i}", 30) for i in range(10)))
    claimed = [c.id for c in claims if c is not None]
    assert sorted(claimed) == sorted(submitted)


async def test_cancel_guards_every_later_worker_write(store: Store) -> None:
    key = await add_key(store)
    execution_id = await add_execution(store, key)
    claimed = await store.claims.claim_next("w1", 30)
    assert claimed is not None
    cancelled = await store.executions.cancel(execution_id, key.id, "user_requested", time.time())
    assert cancelled is not None
    assert cancelled.status == "cancelled"
    lease = claimed.lease
    snapshot = ProgressSnapshot(0.5, "KSampler", "3", 1, 2, 0)
    assert not await store.claims.record_progress(lease, snapshot)
    assert not await store.claims.complete(lease, [], snapshot, 1.0)
    assert not await store.claims.fail(lease, {"message": "x"}, 1.0)
    assert not await store.claims.still_owns(lease)
    final = await store.executions.execution(execution_id)
    assert final is not None
    assert final.status == "cancelled"
    assert await store.executions.cancel(execution_id, key.id, "user_requested",
                                         time.time()) is None


async def test_complete_records_outputs_and_log_together(store: Store) -> None:
    key = await add_key(store)
    execution_id = await add_execution(store, key)
    claimed = await store.claims.claim_next("w1", 30)
    assert claimed is not None
    output = OutputRecord(
        id="out_1", execution_id=execution_id, node_id="9", output_type="IMAGE",
        intermediate=False, filename="a.png", content_type="image/png", size_bytes=10,
        width=8, height=8, format="PNG", storage_provider="local", storage_bucket=None,
        storage_key=f"outputs/{execution_id}/a.png", created_at=time.time(),
    )
    done = ProgressSnapshot(1.0, None, None, 20, 20, 1)
    log = [LogEntry(time.time(), "node_completed", "9", "SaveImage completed", {"d": 1})]
    assert await store.claims.complete(claimed.lease, [output], done, 2.5, log)
    final = await store.executions.execution(execution_id)
    assert final is not None
    assert (final.status, final.progress, final.completed_nodes, final.gpu_time) == (
        "completed", 1.0, 1, 2.5)
    assert await store.executions.outputs(execution_id) == [output]
    events = [entry.event for entry in await store.executions.events(execution_id)]
    assert events == ["execution_queued", "node_completed"]


async def test_requeue_waits_for_not_before_and_counts_attempts(store: Store) -> None:
    key = await add_key(store)
    execution_id = await add_execution(store, key, max_attempts=3)
    first = await store.claims.claim_next("w1", 30)
    assert first is not None
    assert await store.claims.requeue(first.lease, {"message": "engine lost"}, time.time() - 1)
    assert await store.claims.requeue(first.lease, {}, 0) is False, "a lease is used once"
    second = await store.claims.claim_next("w2", 30)
    assert second is not None
    assert (second.id, second.attempt) == (execution_id, 2)
    assert await store.claims.requeue(second.lease, {"message": "again"}, time.time() + 60)
    assert await store.claims.claim_next("w3", 30) is None, "not before its backoff has passed"
    waiting = await store.executions.execution(execution_id)
    assert waiting is not None
    assert waiting.status == "queued"
    assert waiting.error == {"message": "again"}


async def _claimed_by_w1(store: Store) -> ExecutionRecord:
    """A new execution, claimed by worker w1."""
    await add_execution(store, await add_key(store))
    claimed = await store.claims.claim_next("w1", 30)
    assert claimed is not None
    return claimed


async def test_progress_is_written_only_by_the_lease_holder(store: Store) -> None:
    claimed = await _claimed_by_w1(store)
    snapshot = ProgressSnapshot(0.25, "KSampler", "3", 5, 20, 1)
    assert await store.claims.record_progress(claimed.lease, snapshot)
    stranger = type(claimed.lease)(claimed.id, "w2", claimed.attempt)
    assert not await store.claims.record_progress(stranger, snapshot)
    assert await store.claims.renew_lease(claimed.lease, 30)
    assert not await store.claims.renew_lease(stranger, 30)
    current = await store.executions.execution(claimed.id)
    assert current is not None
    assert (current.progress, current.current_node, current.current_step) == (0.25, "KSampler", 5)


async def _lease_expired(store: Store, execution_id: str) -> None:
    async def expired() -> bool:
        leases = await store.claims.expired_leases(time.time())
        return execution_id in [lease.execution_id for lease in leases]

    await wait_for(expired, timeout=5, interval=0.01, what="the lease to expire")


async def test_an_expired_lease_is_rescued_and_the_zombie_cannot_write(store: Store) -> None:
    from comfy_serverless.queue.rescuer import Rescuer

    key = await add_key(store)
    execution_id = await add_execution(store, key, max_attempts=2)
    zombie = await store.claims.claim_next("w-dead", 0.05)
    assert zombie is not None
    alive = await add_execution(store, key)
    healthy = await store.claims.claim_next("w-alive", 60)
    assert healthy is not None
    assert healthy.id == alive
    await _lease_expired(store, zombie.id)
    report = await Rescuer(store).run_once()
    assert (report.requeued, report.failed) == ([execution_id], [])
    rescued = await store.executions.execution(execution_id)
    assert rescued is not None
    assert rescued.error is not None
    assert rescued.error["details"]["error_type"] == "WORKER_LOST"
    assert rescued.not_before is not None
    snapshot = ProgressSnapshot(1.0, None, None, None, None, 1)
    assert not await store.claims.record_progress(zombie.lease, snapshot)
    assert not await store.claims.complete(zombie.lease, [], snapshot, 1.0)
    assert not await store.claims.renew_lease(zombie.lease, 30)
    untouched = await store.executions.execution(alive)
    assert untouched is not None
    assert untouched.status == "processing"


async def test_a_lease_rescued_with_no_attempts_left_fails(store: Store) -> None:
    from comfy_serverless.queue.rescuer import Rescuer

    key = await add_key(store)
    execution_id = await add_execution(store, key, max_attempts=1)
    assert await store.claims.claim_next("w-dead", 0.01) is not None
    await _lease_expired(store, execution_id)
    given_up: list[str] = []

    async def on_failed(execution: ExecutionRecord) -> None:
        given_up.append(execution.id)

    report = await Rescuer(store, on_failed=on_failed).run_once()
    assert report.failed == [execution_id]
    assert given_up == [execution_id], "told, so that its staged inputs can be deleted"
    failed = await store.executions.execution(execution_id)
    assert failed is not None
    assert failed.status == "failed"
    assert failed.error is not None
    assert failed.error["retry_info"]["remaining_retries"] == 0
    logged = await store.executions.events(execution_id)
    assert "execution_rescued" in [entry.event for entry in logged]


async def test_hand_back_returns_the_attempt(store: Store) -> None:
    key = await add_key(store)
    execution_id = await add_execution(store, key)
    claimed = await store.claims.claim_next("w1", 30)
    assert claimed is not None
    assert await store.claims.hand_back(claimed.lease)
    again = await store.claims.claim_next("w2", 30)
    assert again is not None
    assert (again.id, again.attempt) == (execution_id, 1)


async def test_a_priority_10_submitted_after_20_priority_1_runs_next(store: Store) -> None:
    key = await add_key(store)
    now = time.time()
    for index in range(20):
        await add_execution(store, key, priority=1, submitted_at=now - 100 + index)
    urgent = await add_execution(store, key, priority=10, submitted_at=now)
    claimed = await store.claims.claim_next("w1", 30)
    assert claimed is not None
    assert claimed.id == urgent


async def test_aging_lifts_a_long_waiting_execution_to_the_front(store: Store) -> None:
    key = await add_key(store)
    now = time.time()
    patient = await add_execution(store, key, priority=1, submitted_at=now - 1000)
    fresh = await add_execution(store, key, priority=9, submitted_at=now)
    raised = [await store.claims.age_queued(now, aging_seconds=60) for _ in range(12)]
    assert raised == [1] * 9 + [0] * 3, "one level per pass, never past 10"
    record = await store.executions.execution(patient)
    assert record is not None
    assert (record.priority, record.requested_priority) == (10, 1)
    first = await store.claims.claim_next("w1", 30)
    assert first is not None
    assert first.id == patient
    young = await store.executions.execution(fresh)
    assert young is not None
    assert young.priority == 9, "a fresh execution has not aged"


async def test_gpu_usage_is_kept_with_progress_and_outcome(store: Store) -> None:
    claimed = await _claimed_by_w1(store)
    snapshot = ProgressSnapshot(0.5, "KSampler", "3", 5, 10, 1)
    so_far = {"gpu_utilization": 0.5, "memory_efficiency": 0.25}
    assert await store.claims.record_progress(claimed.lease, snapshot, engine_metrics=so_far)
    assert await store.claims.record_progress(claimed.lease, snapshot)  # no sample: kept
    running = await store.executions.execution(claimed.id)
    assert running is not None
    assert running.engine_metrics == so_far
    final = {"gpu_utilization": 0.75, "memory_efficiency": 0.5}
    assert await store.claims.complete(claimed.lease, [],
                                       ProgressSnapshot(1, None, None, None, None, 1),
                                       1.0, engine_metrics=final)
    done = await store.executions.execution(claimed.id)
    assert done is not None
    assert done.engine_metrics == final
