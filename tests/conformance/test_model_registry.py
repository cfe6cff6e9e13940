"""The model registry's housekeeping, on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from dataclasses import replace

from comfy_serverless.auth.keys import issue_key
from comfy_serverless.store.models import FileSource, ModelFile, ModelPreload
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


async def test_placed_files_keep_their_sources_and_source_preloads_their_policy(
        store: Store) -> None:
    now = time.time()
    url = FileSource("https://127.0.0.1/m/a.safetensors", "127.0.0.1", "k1" * 16)
    mirror = FileSource("s3://acme/a.safetensors", "s3://acme", "k2" * 16)
    for worker, source in (("w1", url), ("w2", mirror)):
        await store.workers.heartbeat_worker(WorkerState(worker, "idle", None, None, None,
                                                         region=f"region-{worker}"))
        await store.models.publish(worker, [
            ModelFile("checkpoints", "plain.safetensors", 10, now),
            ModelFile("checkpoints", "abcdef012345-a.safetensors", 10, now, "ab" * 32, None,
                      (source,))])
    seen = {(f.worker_id, f.file.filename): f.file.sources
            for f in await store.models.fleet_files(now - 60)}
    assert seen[("w1", "abcdef012345-a.safetensors")] == (url,)
    assert seen[("w1", "plain.safetensors")] == ()
    assert await store.models.placed_files(now - 60) == {
        "abcdef012345-a.safetensors": (url, mirror)}
    assert {w.id: w.region for w in await store.workers.live_workers(now - 60)} == {
        "w1": "region-w1", "w2": "region-w2"}

    key = issue_key("secret", "pro").record
    await store.access.create_api_key(key)
    by_source = replace(_preload("pre_src", key.id, now + 600),
                        source="https://127.0.0.1/m/a.safetensors?sig=x",
                        source_sha256="ab" * 32, allowed_hosts=("127.0.0.1", "*.example.com"))
    await store.models.add_preloads([by_source, _preload("pre_id", key.id, now + 600)])
    active = {p.id: p for p in await store.models.active_preloads(now)}
    assert active["pre_src"] == by_source
    assert (active["pre_id"].source, active["pre_id"].allowed_hosts) == (None, ())
