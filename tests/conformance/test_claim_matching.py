"""Claim-time matching, on SQLite and PostgreSQL alike: GPU types and model affinity."""

from __future__ import annotations

import time

import asyncpg
import pytest

from comfy_serverless.auth.keys import issue_key
from comfy_serverless.executions.submission import new_execution_id
from comfy_serverless.store.options import ExecutionOptions
from comfy_serverless.store.records import ApiKeyRecord, ClaimMatch, NewExecution
from comfy_serverless.store.store import Store

GRAPH = {"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8}}}


async def _key(store: Store) -> ApiKeyRecord:
    issued = issue_key("secret", "basic")
    await store.access.create_api_key(issued.record)
    return issued.record


async def _submit(store: Store, key: ApiKeyRecord, *, age: float, priority: int = 5,
                  models: tuple[str, ...] = (), gpu_types: tuple[str, ...] | None = None
                  ) -> str:
    execution = NewExecution(
        id=new_execution_id(), api_key_id=key.id, priority=priority, workflow=GRAPH,
        options=ExecutionOptions(), signature="sig", webhook_url=None, client_id=None,
        submitted_at=time.time() - age, max_attempts=1, total_nodes=1,
        allowed_gpu_types=gpu_types, required_models=models)
    await store.executions.create_execution(execution)
    return execution.id


async def _claim_all(store: Store, match: ClaimMatch) -> list[str]:
    claimed = []
    while (execution := await store.claims.claim_next("w1", 30, match=match)) is not None:
        claimed.append(execution.id)
    return claimed


async def test_a_claim_takes_only_rows_whose_gpu_types_allow_the_worker(store: Store) -> None:
    key = await _key(store)
    h200_only = await _submit(store, key, age=5, gpu_types=("H200",))
    anywhere = await _submit(store, key, age=4)
    all_types = await _submit(store, key, age=3, gpu_types=("all",))
    a100_or_h200 = await _submit(store, key, age=2, gpu_types=("A100", "h200"))
    assert await _claim_all(store, ClaimMatch(gpu_type="cpu")) == [anywhere, all_types]
    assert await _claim_all(store, ClaimMatch(gpu_type="H200")) == [h200_only, a100_or_h200]


async def test_an_unknown_gpu_type_takes_only_unrestricted_rows(store: Store) -> None:
    key = await _key(store)
    await _submit(store, key, age=2, gpu_types=("T4",))
    anywhere = await _submit(store, key, age=1)
    assert await _claim_all(store, ClaimMatch(gpu_type=None)) == [anywhere]


async def test_a_worker_without_a_declared_gpu_type_takes_every_tier(store: Store) -> None:
    key = await _key(store)
    t4_only = await _submit(store, key, age=2, gpu_types=("T4",))
    anywhere = await _submit(store, key, age=1)
    match = ClaimMatch(gpu_type="cpu", any_gpu_type=True)
    assert await _claim_all(store, match) == [t4_only, anywhere]


async def test_queued_above_ignores_rows_the_worker_may_not_run(store: Store) -> None:
    key = await _key(store)
    await _submit(store, key, age=1, priority=9, gpu_types=("H200",))
    now = time.time()
    assert not await store.claims.has_queued_above(5, now, ClaimMatch(gpu_type="cpu"))
    assert await store.claims.has_queued_above(5, now, ClaimMatch(gpu_type="H200"))
    assert await store.claims.has_queued_above(5, now,
                                               ClaimMatch(gpu_type="cpu", any_gpu_type=True))


async def test_affinity_prefers_jobs_whose_models_are_warm(store: Store) -> None:
    key = await _key(store)
    first = await _submit(store, key, age=5, models=("a.safetensors",))
    second = await _submit(store, key, age=4, models=("b.safetensors",))
    third = await _submit(store, key, age=3, models=("b.safetensors", "lora.safetensors"))
    fourth = await _submit(store, key, age=2, models=("b.safetensors",))
    warm_b = ClaimMatch(warm_models=frozenset({"b.safetensors"}), affinity_max_wait=600)
    claimed = await _claim_all(store, warm_b)
    # `third` also needs a LoRA that is not warm: it is not preferred.
    assert claimed == [second, fourth, first, third]


async def test_without_warm_models_the_claim_is_first_in_first_out(store: Store) -> None:
    key = await _key(store)
    ids = [await _submit(store, key, age=10 - i, models=(f"m{i % 3}.safetensors",))
           for i in range(6)]
    assert await _claim_all(store, ClaimMatch(affinity_max_wait=600)) == ids


async def test_affinity_never_overtakes_a_higher_priority(store: Store) -> None:
    key = await _key(store)
    urgent_cold = await _submit(store, key, age=1, priority=9, models=("a.safetensors",))
    warm_low = await _submit(store, key, age=5, priority=5, models=("b.safetensors",))
    match = ClaimMatch(warm_models=frozenset({"b.safetensors"}), affinity_max_wait=600)
    assert await _claim_all(store, match) == [urgent_cold, warm_low]


async def test_affinity_reorders_only_within_its_window(store: Store) -> None:
    key = await _key(store)
    cold = [await _submit(store, key, age=9 - i, models=("a.safetensors",)) for i in range(3)]
    warm = await _submit(store, key, age=1, models=("b.safetensors",))
    match = ClaimMatch(warm_models=frozenset({"b.safetensors"}), affinity_window=3,
                       affinity_max_wait=600)
    first = await store.claims.claim_next("w1", 30, match=match)
    assert first is not None
    assert first.id == cold[0]
    # Now the warm job is within the first three candidates.
    second = await store.claims.claim_next("w1", 30, match=match)
    assert second is not None
    assert second.id == warm


async def test_only_jobs_submitted_within_the_max_wait_overtake_the_oldest(store: Store
                                                                          ) -> None:
    key = await _key(store)
    oldest = await _submit(store, key, age=100, models=("a.safetensors",))
    soon_after = await _submit(store, key, age=80, models=("b.safetensors",))
    long_after = await _submit(store, key, age=50, models=("b.safetensors",))
    match = ClaimMatch(warm_models=frozenset({"b.safetensors"}), affinity_max_wait=30)
    assert await _claim_all(store, match) == [soon_after, oldest, long_after]


async def test_a_claimed_row_keeps_its_matching_columns(store: Store) -> None:
    key = await _key(store)
    execution_id = await _submit(store, key, age=1, models=("a.safetensors",),
                                 gpu_types=("H200",))
    claimed = await store.claims.claim_next("w1", 30, match=ClaimMatch(gpu_type="H200"))
    assert claimed is not None
    assert claimed.id == execution_id
    assert claimed.required_models == ["a.safetensors"]
    assert claimed.allowed_gpu_types == ["H200"]


async def test_gpu_types_match_whole_names_only(store: Store) -> None:
    key = await _key(store)
    underscored = await _submit(store, key, age=2, gpu_types=("A100_80GB", "50%"))
    assert await _claim_all(store, ClaimMatch(gpu_type="A100x80GB")) == []
    assert await _claim_all(store, ClaimMatch(gpu_type="A100")) == []
    assert await _claim_all(store, ClaimMatch(gpu_type="5")) == []
    assert await _claim_all(store, ClaimMatch(gpu_type="a100_80gb")) == [underscored]


async def test_a_window_locked_by_other_claims_never_makes_the_queue_look_empty(
        store: Store, database_url: str) -> None:
    """PostgreSQL: rows being claimed by others are skipped, affinity or not."""
    if store.dialect != "postgres":
        pytest.skip("SQLite claims are serialised: no row is ever locked by another claim")
    key = await _key(store)
    window = [await _submit(store, key, age=20 - i, models=("b.safetensors",)) for i in range(8)]
    beyond = await _submit(store, key, age=1, models=("a.safetensors",))
    other = await asyncpg.connect(database_url)
    try:
        async with other.transaction():
            await other.execute("SELECT id FROM executions WHERE id = ANY($1::text[]) "
                                "FOR UPDATE", window)
            match = ClaimMatch(warm_models=frozenset({"b.safetensors"}))
            claimed = await store.claims.claim_next("w1", 30, match=match)
            assert claimed is not None
            assert claimed.id == beyond
    finally:
        await other.close()


# A job that names a model source requires it as `sha256:<hex>` (pinned) or `source:<key>`;
# a worker's claim names both, and the placed name, for each file of its model cache (its
# disk models; the other files of its folders count only when warm, models/inventory.py).
_CACHED = "sha256:" + "ab" * 32


async def test_affinity_prefers_loaded_then_on_disk_then_neither(store: Store) -> None:
    key = await _key(store)
    neither = await _submit(store, key, age=5, models=("a.safetensors",))
    on_disk = await _submit(store, key, age=4, models=(_CACHED,))
    loaded = await _submit(store, key, age=3, models=("b.safetensors",))
    match = ClaimMatch(warm_models=frozenset({"b.safetensors"}),
                       disk_models=frozenset({_CACHED, "b.safetensors"}), affinity_max_wait=600)
    assert await _claim_all(store, match) == [loaded, on_disk, neither]


async def test_the_job_goes_to_the_worker_that_has_its_file_on_disk(store: Store) -> None:
    """Two workers, nothing loaded on either: the job whose source is in one worker's cache
    goes to that worker, though an older job waits; the other worker takes the older job,
    whose file it has."""
    key = await _key(store)
    older = await _submit(store, key, age=5, models=("a.safetensors",))
    cached = await _submit(store, key, age=4, models=(_CACHED, "vae.safetensors"))
    has_the_cache = ClaimMatch(disk_models=frozenset({_CACHED, "vae.safetensors"}),
                               affinity_max_wait=600)
    has_a = ClaimMatch(disk_models=frozenset({"a.safetensors", "vae.safetensors"}),
                       affinity_max_wait=600)
    first = await store.claims.claim_next("w-cache", 30, match=has_the_cache)
    second = await store.claims.claim_next("w-a", 30, match=has_a)
    assert (first and first.id, second and second.id) == (cached, older)


async def test_on_disk_models_overtake_only_within_the_window_and_the_max_wait(
        store: Store) -> None:
    key = await _key(store)
    oldest = await _submit(store, key, age=100, models=("a.safetensors",))
    late = await _submit(store, key, age=50, models=(_CACHED,))
    cold = [await _submit(store, key, age=99 - i, models=("c.safetensors",)) for i in range(3)]
    soon = await _submit(store, key, age=95, models=(_CACHED,))
    match = ClaimMatch(disk_models=frozenset({_CACHED}), affinity_window=4,
                       affinity_max_wait=30)
    # `soon` is fifth in strict order: outside the window of 4 until `oldest` is taken.
    assert await _claim_all(store, match) == [oldest, soon, *cold, late]
