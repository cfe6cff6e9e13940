"""The model registry's housekeeping, on SQLite and PostgreSQL."""

from __future__ import annotations

import time

from comfy_serverless.auth.keys import issue_key
from comfy_serverless.store.models import ModelFile, ModelPreload
from comfy_serverless.store.records import WorkerState
from comfy_serverless.store.store import Store


def _preload(preload_id: str, key_id: str, expires_at: float) -> ModelPreload:
    return ModelPreload(id=preload_id, api_key_id=key_id, model_id="checkpoint/a",
                        folder="checkpoints", filename="a.safetensors", priority=5,
                        regions=None, requested_at=expires_at - 60, expires_at=expires_at)


async def test_departed_workers_and_expired_preloads_are_forgotten(store: Store) -> None:
    now = time.time()
    await store.workers.heartbeat_worker(WorkerState("alive", "idle", None, None, None))
    files = [ModelFile("checkpoints", "a.safetensors", 10, now)]
    await store.models.publish("alive", files)
    await store.models.publish("departed", files)  # never heard from
    key = issue_key("secret", "pro").record
    await store.access.create_api_key(key)
    await store.models.add_preloads([_preload("pre_old", key.id, now - 10),
                                     _preload("pre_live", key.id, now + 600)])
    assert await store.models.forget_departed(now - 5) == 1
    assert {file.worker_id for file in await store.models.fleet_files(now - 60)} == {"alive"}
    assert [p.id for p in await store.models.active_preloads(now - 3600)] == ["pre_live"]
