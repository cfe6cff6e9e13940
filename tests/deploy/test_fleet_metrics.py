"""The gauges the alert rules and the dashboard need beyond the original /metrics: the age of
the oldest queued job by priority, failures by error code, and lease rescues. Run against
SQLite and PostgreSQL alike."""

from __future__ import annotations

import time

from comfy_serverless.auth.keys import issue_key
from comfy_serverless.executions.submission import new_execution_id
from comfy_serverless.queue.rescuer import Rescuer
from comfy_serverless.store.options import ExecutionOptions
from comfy_serverless.store.records import ApiKeyRecord, NewExecution
from comfy_serverless.store.store import Store
from tests.helpers import wait_for

GRAPH = {"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8}}}


async def _key(store: Store) -> ApiKeyRecord:
    issued = issue_key("secret", "basic")
    await store.access.create_api_key(issued.record)
    return issued.record


async def _submit(store: Store, key: ApiKeyRecord, *, priority: int, submitted_at: float) -> str:
    execution = NewExecution(
        id=new_execution_id(), api_key_id=key.id, priority=priority, workflow=GRAPH,
        options=ExecutionOptions(), signature="sig", webhook_url=None, client_id=None,
        submitted_at=submitted_at, max_attempts=1, total_nodes=1)
    await store.executions.create_execution(execution)
    return execution.id


async def test_an_empty_fleet_reports_nothing_waiting_failed_or_rescued(store: Store) -> None:
    figures = await store.fleet.figures(time.time())
    assert (figures.oldest_queued_age, figures.failures_by_code, figures.lease_rescues) == (
        {}, {}, 0)


async def test_the_oldest_queued_job_is_aged_per_priority(store: Store) -> None:
    key = await _key(store)
    now = time.time()
    submitted = {await _submit(store, key, priority=p, submitted_at=now - age): (p, age)
                 for p, age in [(1, 300), (1, 10), (9, 60), (5, 900)]}
    claimed = await store.claims.claim_next("w1", 30)
    assert claimed is not None
    waiting = [submitted[i] for i in submitted if i != claimed.id]
    expected = {str(p): max(age for q, age in waiting if q == p) for p, _ in waiting}
    figures = await store.fleet.figures(now)
    assert {p: round(age) for p, age in figures.oldest_queued_age.items()} == expected


async def test_a_lost_lease_counts_as_a_rescue_and_a_failure_by_its_code(store: Store) -> None:
    key = await _key(store)
    execution_id = await _submit(store, key, priority=5, submitted_at=time.time())
    assert await store.claims.claim_next("w-dead", 0.01) is not None

    async def expired() -> bool:
        return execution_id in [lease.execution_id
                                for lease in await store.claims.expired_leases(time.time())]

    await wait_for(expired, timeout=5, interval=0.01, what="the lease to expire")
    assert (await Rescuer(store).run_once()).failed == [execution_id]
    failed = await store.executions.execution(execution_id)
    assert failed is not None
    assert failed.error is not None
    figures = await store.fleet.figures(time.time())
    assert figures.lease_rescues == 1
    assert figures.failures_by_code == {failed.error["error_code"]: 1}
