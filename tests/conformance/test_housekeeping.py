"""The housekeeping service (queue/housekeeping.py), on SQLite and PostgreSQL: one pass
forgets what has expired and keeps what is still live."""

from __future__ import annotations

import time

from comfy_serverless.auth.keys import issue_key
from comfy_serverless.executions.submission import new_execution_id
from comfy_serverless.queue.housekeeping import DEPARTED_AFTER_SECONDS, Housekeeping
from comfy_serverless.store.access import AdmissionLimits, Admitted, IdempotencyClaim
from comfy_serverless.store.models import ModelFile, ModelPreload
from comfy_serverless.store.options import ExecutionOptions
from comfy_serverless.store.records import ApiKeyRecord, NewExecution, WorkerState
from comfy_serverless.store.store import Store

GRAPH = {"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8}}}
DAY = 24 * 3600.0


async def _admit_with_request_key(store: Store, key: ApiKeyRecord, request_key: str,
                                  submitted_at: float) -> None:
    execution = NewExecution(
        id=new_execution_id(), api_key_id=key.id, priority=5, workflow=GRAPH,
        options=ExecutionOptions(), signature="sig", webhook_url=None, client_id=None,
        submitted_at=submitted_at, max_attempts=1, total_nodes=1)
    limits = AdmissionLimits("pro", concurrent_executions=10, max_queue_size=100,
                             monthly_quota=None, period="2026-11")
    claim = IdempotencyClaim(request_key, "fingerprint", cutoff=0.0)
    assert isinstance(await store.access.admit(execution, limits, claim), Admitted)


async def _request_keys_kept(store: Store, key: ApiKeyRecord, *names: str) -> list[str]:
    claims = [IdempotencyClaim(name, "fingerprint", cutoff=0.0) for name in names]
    return [claim.request_key for claim in claims
            if await store.access.idempotent_execution(key.id, claim) is not None]


def _preload(preload_id: str, key_id: str, expires_at: float) -> ModelPreload:
    return ModelPreload(id=preload_id, api_key_id=key_id, model_id="checkpoint/a",
                        folder="checkpoints", filename="a.safetensors", priority=5,
                        regions=None, requested_at=expires_at - 60, expires_at=expires_at)


async def test_a_pass_forgets_expired_keys_departed_workers_and_old_preloads(
        store: Store) -> None:
    now = time.time()
    key = issue_key("secret", "pro").record
    await store.access.create_api_key(key)
    await _admit_with_request_key(store, key, "old-request", now - 2 * DAY)
    await _admit_with_request_key(store, key, "new-request", now - 60)
    await store.workers.heartbeat_worker(WorkerState("alive", "idle", None, None, None))
    files = [ModelFile("checkpoints", "a.safetensors", 10, now)]
    await store.models.publish("alive", files)
    await store.models.publish("departed", files)  # never heard from
    await store.models.add_preloads([
        _preload("pre_long_gone", key.id, now - DEPARTED_AFTER_SECONDS - 60),
        _preload("pre_just_expired", key.id, now - 60)])

    await Housekeeping(store, clock=lambda: now).run_once()

    assert await _request_keys_kept(store, key, "old-request", "new-request") == [
        "new-request"]
    assert {file.worker_id for file in await store.models.fleet_files(now - 60)} == {"alive"}
    remaining = await store.models.active_preloads(now - 2 * DAY)
    assert [preload.id for preload in remaining] == ["pre_just_expired"]
