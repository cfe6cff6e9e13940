"""Who sees a fetched model in the catalog a job is validated against, on SQLite and
PostgreSQL: deny by default. An option with the shape of a placed name shows only to a tier
that a current record of its sources allows, whatever state its worker is in, and an option
of that shape with no record shows to no tier."""

from __future__ import annotations

import json
import time

from comfy_serverless.executions.catalogs import CatalogCache
from comfy_serverless.models.listing import HostCheck
from comfy_serverless.store.models import FileSource, ModelFile
from comfy_serverless.store.records import WorkerState
from comfy_serverless.store.store import Store

SECRET = "6ce0161689b3-secret.safetensors"  # fetched by tier A from 127.0.0.1
GHOST = "0123456789ab-ghost.safetensors"  # the shape of a placed name, no record at all
SOURCE = FileSource("https://127.0.0.1/m/secret.safetensors", "127.0.0.1", "k" * 32)
TIER_A: HostCheck = lambda host: host == "127.0.0.1"  # noqa: E731
TIER_B: HostCheck = lambda host: host == "127.0.0.2"  # noqa: E731
ANY_HOST: HostCheck = lambda host: True  # noqa: E731


def _object_info() -> str:
    return json.dumps({"CheckpointLoaderSimple": {
        "input": {"required": {"ckpt_name": [["plain.safetensors", SECRET, GHOST]]}},
        "output": ["MODEL", "CLIP", "VAE"], "name": "CheckpointLoaderSimple",
        "python_module": "nodes"}})


async def _offered(cache: CatalogCache, may_fetch: HostCheck
                   ) -> tuple[tuple[object, ...], frozenset[str]]:
    catalog, usable = await cache.for_tier(may_fetch)
    assert catalog is not None
    spec = catalog.get("CheckpointLoaderSimple")
    assert spec is not None
    return spec.inputs["ckpt_name"].options or (), usable


async def test_a_fetched_option_shows_only_to_a_tier_its_record_allows_even_once_stopped(
        store: Store) -> None:
    now = time.time()
    await store.workers.heartbeat_worker(WorkerState("w1", "idle", None, None, None))
    await store.workers.publish_catalog("w1", _object_info())
    await store.models.publish("w1", [
        ModelFile("checkpoints", "plain.safetensors", 10, now),
        ModelFile("checkpoints", SECRET, 10, now, "6ce0161689b3" + "0" * 52, None, (SOURCE,))])
    cache = CatalogCache(store, max_age=3600, refresh_seconds=0)

    assert await _offered(cache, TIER_A) == (("plain.safetensors", SECRET), frozenset({SECRET}))
    assert await _offered(cache, TIER_B) == (("plain.safetensors",), frozenset())
    assert (await _offered(cache, ANY_HOST))[0] == ("plain.safetensors", SECRET)  # not GHOST

    # The reviewer's reproduction: the worker stops gracefully; its catalog is still read.
    await store.workers.heartbeat_worker(WorkerState("w1", "stopped", None, None, None))
    assert await _offered(cache, TIER_B) == (("plain.safetensors",), frozenset())
    assert await _offered(cache, TIER_A) == (("plain.safetensors", SECRET), frozenset({SECRET}))

    # Its model rows forgotten (housekeeping) while its catalog is still used: no record,
    # so no tier sees the file.
    await store.models.publish("w1", [ModelFile("checkpoints", "plain.safetensors", 10, now)])
    for tier in (TIER_A, TIER_B, ANY_HOST):
        assert await _offered(cache, tier) == (("plain.safetensors",), frozenset())
