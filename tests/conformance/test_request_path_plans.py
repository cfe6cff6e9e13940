"""The EXPLAIN rule of issue #18: no query on a request path (or a pass that runs in every
process) scans the whole queue or the whole history. On PostgreSQL only (its planner is the
one a fleet runs), with no skip: without PostgreSQL these tests fail.

The tables hold 40,000 finished executions spread over 60 days, each with a log entry, and
4,000 queued ones, ANALYZEd: enough that the planner takes a sequential scan wherever no
index serves. Every query is planned with realistic values, and its plan must hold no
Seq Scan on executions, execution_events or webhook_deliveries."""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from comfy_serverless.store.executions import QUEUE_POSITION_BOUND
from comfy_serverless.store.sql_loader import load_queries
from comfy_serverless.store.store import Store
from tests.conformance.seeding import seed_finished, seed_queued, settle
from tests.conftest import fresh_postgres_schema
from workloads.rows import add_execution, add_key

# Every query a request runs (submit, status, cancel, results, queue status, /metrics, auth,
# idempotency) and those a worker or every process's background passes run per job or pass.
REQUEST_PATH_QUERIES = (
    "insert_execution", "insert_event", "execution_for_key", "execution_by_id",
    "queue_position", "cancel_execution", "events_for_execution", "outputs_for_execution",
    "claim_next", "claim_next_in_order", "queued_above", "renew_lease", "record_progress",
    "complete_execution", "fail_execution", "requeue_execution", "execution_status_for_worker",
    "expired_leases", "status_tallies", "duration_tallies", "completion_totals",
    "recent_wait_time", "recent_processing_time", "average_processing_time",
    "average_processing_time_for_signature", "model_loads", "idempotency_key",
    "insert_idempotency_key", "api_key_by_prefix", "touch_api_key", "unfinished_for_key",
    "admission_counts", "count_queued_for_tier", "delete_expired_executions",
    "fold_tally_deltas", "failures_by_code", "lease_rescues", "webhook_deliveries_by_outcome",
    "oldest_queued_by_priority", "environment_seen",
)
_SCANNED_WHOLE = {"executions", "execution_events", "webhook_deliveries"}
_PARAMETER = re.compile(r"(?<!:):([a-z_]+)")


def _values(queued_id: str, api_key_id: str, now: float) -> dict[str, Any]:
    """A realistic value for every parameter the queries above take."""
    return {
        "id": queued_id, "execution_id": queued_id, "api_key_id": api_key_id, "priority": 5,
        "requested_priority": 5, "submitted_at": now - 30, "bound": QUEUE_POSITION_BOUND,
        "now": now,
        "reason": "user", "worker_id": "w1", "lease_expires_at": now + 30, "attempt": 1,
        "engine_prompt_id": None, "resource_allocation": None, "gpu_pattern": '%"t4"%',
        "warm_models": '["checkpoints/a.safetensors"]', "affinity_window": 8,
        "disk_models": '["checkpoints/a.safetensors", "checkpoints/b.safetensors"]',
        "affinity_max_wait": 5.0, "signature": "sig7", "since": now - 3600,
        "request_key": "rk", "fingerprint": "f", "prefix": "csk_abcdefgh", "limit": 10,
        "cap": 10, "concurrent_cap": 10, "queue_cap": 100, "tier": "basic", "sample": 100,
        "batch": 10_000,
        "before": now - 30 * 86400, "at": now, "period": "2026-11",
        "event": "e", "node_id": None, "message": "m", "details": None, "progress": 0.5,
        "current_node": None,
        "current_node_id": None, "current_step": None, "total_steps": None,
        "completed_nodes": 1, "engine_metrics": None, "gpu_time": 1.0, "error": None,
        "not_before": None, "workflow": "{}", "options": "{}", "webhook_url": None,
        "webhook_destination": None, "webhook_secret": None, "webhook_max_retries": 3,
        "client_id": None, "max_attempts": 1, "total_nodes": 1, "allowed_gpu_types": None,
        "required_models": None, "last_used_at": now, "environment": None,
        "environment_hash": None, "worker_environment": "sdxl-tools",
        "worker_environment_hash": "3f2a9c" + "0" * 58, "name": "sdxl-tools",
        "hash_prefix": "3f2a9c",
    }


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


@pytest.fixture
async def seeded() -> AsyncIterator[tuple[Store, dict[str, Any]]]:
    async with fresh_postgres_schema() as url:
        store = await Store.open(url)
        try:
            await store.migrate()
            key = await add_key(store)
            await seed_finished(store, key.id, 40_000)
            await seed_queued(store, key.id, 4_000)
            queued_id = await add_execution(store, key, priority=5, submitted_at=time.time() - 30)
            await settle(store)
            yield store, _values(queued_id, key.id, time.time())
        finally:
            await store.close()


async def _plan(store: Store, sql: str, values: dict[str, Any]) -> dict[str, Any]:
    params = {name: values[name] for name in set(_PARAMETER.findall(sql))}
    row = await store.connector.fetch_one(f"EXPLAIN (FORMAT JSON) {sql}", params)
    assert row is not None
    document = row["QUERY PLAN"]
    return dict((json.loads(document) if isinstance(document, str) else document)[0])


async def test_no_request_path_query_scans_a_whole_table(
        seeded: tuple[Store, dict[str, Any]]) -> None:
    store, values = seeded
    queries = load_queries("postgres")
    scans: dict[str, list[str]] = {}
    for name in REQUEST_PATH_QUERIES:
        plan = await _plan(store, queries[name], values)
        whole = [node["Relation Name"] for node in _nodes(plan["Plan"])
                 if node["Node Type"] == "Seq Scan" and node.get("Relation Name") in _SCANNED_WHOLE]
        if whole:
            scans[name] = whole
    assert scans == {}, "sequential scans of a whole table"


async def test_queue_position_reads_at_most_the_bound(
        seeded: tuple[Store, dict[str, Any]]) -> None:
    """The last of 4,000 queued: the bound counted, and no more index entries read."""
    store, values = seeded
    last = await store.connector.fetch_one(
        "SELECT id, priority, submitted_at FROM executions WHERE status = 'queued' "
        "ORDER BY priority, submitted_at DESC LIMIT 1")
    assert last is not None
    sql = load_queries("postgres")["queue_position"]
    row = await store.connector.fetch_one(
        f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}",
        {"id": last["id"], "priority": last["priority"], "submitted_at": last["submitted_at"],
         "bound": values["bound"]})
    assert row is not None
    document = row["QUERY PLAN"]
    plan = (json.loads(document) if isinstance(document, str) else document)[0]["Plan"]
    read = sum(node.get("Actual Rows", 0) for node in _nodes(plan)
               if node.get("Relation Name") == "executions")
    assert read <= values["bound"] + 1
    execution = await store.executions.execution(str(last["id"]))
    assert execution is not None
    assert await store.executions.queue_position(execution) == values["bound"] + 1


async def test_the_oldest_queued_per_priority_reads_one_entry_per_priority(
        seeded: tuple[Store, dict[str, Any]]) -> None:
    """4,000 queued at 9 priorities: one claim-order index entry read per priority."""
    store, _ = seeded
    sql = load_queries("postgres")["oldest_queued_by_priority"]
    row = await store.connector.fetch_one(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}")
    assert row is not None
    document = row["QUERY PLAN"]
    plan = (json.loads(document) if isinstance(document, str) else document)[0]["Plan"]
    read = [node.get("Actual Rows", 0) * node.get("Actual Loops", 1) for node in _nodes(plan)
            if node.get("Relation Name") == "executions"]
    priorities = len((await store.fleet.figures(time.time())).oldest_queued_age)
    assert priorities == 9
    assert sum(read) <= priorities
