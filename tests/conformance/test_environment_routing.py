"""Routing by environment, on SQLite and PostgreSQL alike: a job that asks for an
environment is claimed only by a worker whose engine runs it (at a hash that starts with the
asked prefix, when one is pinned); a job that asks for none by any worker. What workers
publish of their environments feeds a queued job's `waiting_for` and the verified node
packs."""

from __future__ import annotations

import time

from comfy_serverless.auth.keys import issue_key
from comfy_serverless.environments.requests import EnvironmentRequest
from comfy_serverless.executions.catalogs import CatalogCache
from comfy_serverless.executions.submission import new_execution_id
from comfy_serverless.executions.waiting import waiting_for
from comfy_serverless.store.options import ExecutionOptions
from comfy_serverless.store.records import ApiKeyRecord, ClaimMatch, NewExecution, WorkerState
from comfy_serverless.store.store import Store
from comfy_serverless.store.workers import PublishedEnvironment

GRAPH = {"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8}}}
SDXL_HASH = "3f2a9c" + "1" * 58
OTHER_HASH = "77aa00" + "2" * 58


async def _key(store: Store) -> ApiKeyRecord:
    issued = issue_key("secret", "basic")
    await store.access.create_api_key(issued.record)
    return issued.record


async def _submit(store: Store, key: ApiKeyRecord, *, age: float, priority: int = 5,
                  environment: EnvironmentRequest | None = None,
                  gpu_types: tuple[str, ...] | None = None) -> str:
    execution = NewExecution(
        id=new_execution_id(), api_key_id=key.id, priority=priority, workflow=GRAPH,
        options=ExecutionOptions(), signature="sig", webhook_url=None, client_id=None,
        submitted_at=time.time() - age, max_attempts=1, total_nodes=1,
        allowed_gpu_types=gpu_types,
        environment=None if environment is None else environment.name,
        environment_hash=None if environment is None else environment.hash_prefix)
    await store.executions.create_execution(execution)
    return execution.id


async def _claim_all(store: Store, match: ClaimMatch) -> list[str]:
    claimed = []
    while (execution := await store.claims.claim_next("w1", 30, match=match)) is not None:
        claimed.append(execution.id)
    return claimed


def _worker(environment: str | None = None, digest: str | None = None, *,
            warm: frozenset[str] = frozenset()) -> ClaimMatch:
    return ClaimMatch(gpu_type="cpu", any_gpu_type=True, environment=environment,
                      environment_hash=digest, warm_models=warm)


async def test_a_job_asking_for_an_environment_goes_only_to_a_worker_that_runs_it(
        store: Store) -> None:
    key = await _key(store)
    sdxl = await _submit(store, key, age=5, environment=EnvironmentRequest("sdxl-tools"))
    video = await _submit(store, key, age=4, environment=EnvironmentRequest("video"))
    anywhere = await _submit(store, key, age=3)
    assert await _claim_all(store, _worker()) == [anywhere]
    assert await _claim_all(store, _worker("other", OTHER_HASH)) == []
    assert await _claim_all(store, _worker("sdxl-tools", SDXL_HASH)) == [sdxl]
    assert await _claim_all(store, _worker("video", OTHER_HASH)) == [video]


async def test_a_worker_with_an_environment_still_takes_jobs_that_ask_for_none(
        store: Store) -> None:
    key = await _key(store)
    first = await _submit(store, key, age=3)
    second = await _submit(store, key, age=2, environment=EnvironmentRequest("sdxl-tools"))
    third = await _submit(store, key, age=1)
    assert await _claim_all(store, _worker("sdxl-tools", SDXL_HASH)) == [first, second, third]


async def test_a_pinned_hash_prefix_must_start_the_workers_hash(store: Store) -> None:
    key = await _key(store)
    pinned = await _submit(store, key, age=2,
                           environment=EnvironmentRequest("sdxl-tools", "3f2a9c11"))
    assert await _claim_all(store, _worker("sdxl-tools", OTHER_HASH)) == []
    assert await _claim_all(store, _worker("sdxl-tools", None)) == []
    assert await _claim_all(store, _worker("sdxl", SDXL_HASH)) == []
    # The worker's hash is compared lowercase, as the prefix is stored.
    assert await _claim_all(store, _worker("sdxl-tools", SDXL_HASH.upper())) == [pinned]


async def test_names_are_matched_whole_and_exactly(store: Store) -> None:
    key = await _key(store)
    await _submit(store, key, age=2, environment=EnvironmentRequest("sdxl_tools"))
    await _submit(store, key, age=1, environment=EnvironmentRequest("Video"))
    assert await _claim_all(store, _worker("sdxlxtools", SDXL_HASH)) == []
    assert await _claim_all(store, _worker("sdxl", SDXL_HASH)) == []
    assert await _claim_all(store, _worker("video", SDXL_HASH)) == []


async def test_environment_and_gpu_type_must_both_match(store: Store) -> None:
    key = await _key(store)
    both = await _submit(store, key, age=2, environment=EnvironmentRequest("sdxl-tools"),
                         gpu_types=("H200",))
    cpu_with_it = ClaimMatch(gpu_type="cpu", environment="sdxl-tools", environment_hash=SDXL_HASH)
    assert await _claim_all(store, cpu_with_it) == []
    h200_without = ClaimMatch(gpu_type="H200", environment="video", environment_hash=SDXL_HASH)
    assert await _claim_all(store, h200_without) == []
    h200_with_it = ClaimMatch(gpu_type="H200", environment="sdxl-tools",
                              environment_hash=SDXL_HASH)
    assert await _claim_all(store, h200_with_it) == [both]


async def test_affinity_claims_respect_environments(store: Store) -> None:
    """claim_next (a worker with warm models) tests environments as claim_next_in_order."""
    key = await _key(store)
    elsewhere = await _submit(store, key, age=3, environment=EnvironmentRequest("video"))
    mine = await _submit(store, key, age=2, environment=EnvironmentRequest("sdxl-tools"))
    warm = _worker("sdxl-tools", SDXL_HASH, warm=frozenset({"a.safetensors"}))
    assert await _claim_all(store, warm) == [mine]
    execution = await store.executions.execution(elsewhere)
    assert execution is not None
    assert execution.status == "queued"
    assert execution.environment == "video"


async def test_queued_above_ignores_jobs_for_other_environments(store: Store) -> None:
    key = await _key(store)
    await _submit(store, key, age=1, priority=9, environment=EnvironmentRequest("video"))
    now = time.time()
    assert not await store.claims.has_queued_above(5, now, _worker())
    assert not await store.claims.has_queued_above(5, now, _worker("sdxl-tools", SDXL_HASH))
    assert await store.claims.has_queued_above(5, now, _worker("video", OTHER_HASH))


async def test_a_claimed_row_keeps_its_environment(store: Store) -> None:
    key = await _key(store)
    asked = EnvironmentRequest("sdxl-tools", "3f2a9c")
    execution_id = await _submit(store, key, age=1, environment=asked)
    claimed = await store.claims.claim_next("w1", 30, match=_worker("sdxl-tools", SDXL_HASH))
    assert claimed is not None
    assert (claimed.id, claimed.environment, claimed.environment_hash) == (
        execution_id, "sdxl-tools", "3f2a9c")


async def _live_worker(store: Store, worker_id: str, environment: PublishedEnvironment, *,
                       gpu_type: str = "cpu", declared: bool = False) -> None:
    await store.workers.heartbeat_worker(WorkerState(worker_id, "idle", gpu_type, None, None,
                                                     gpu_type_declared=declared))
    await store.workers.publish_catalog(worker_id, '{"EmptyImage": {}}', environment)


async def _note(store: Store, execution_id: str) -> dict[str, object] | None:
    execution = await store.executions.execution(execution_id)
    assert execution is not None
    return await waiting_for(execution, store, time.time() - 30)


async def test_a_queued_job_says_no_live_worker_has_its_environment(store: Store) -> None:
    key = await _key(store)
    wanted = await _submit(store, key, age=1, environment=EnvironmentRequest("video"))
    plain = await _submit(store, key, age=1)
    await _live_worker(store, "w-sdxl", PublishedEnvironment("sdxl-tools", SDXL_HASH))
    note = await _note(store, wanted)
    assert note is not None
    assert note["code"] == "NO_WORKER_WITH_ENVIRONMENT"
    assert note["environment"] == "video"
    assert note["live_workers"] == 1
    assert "No live worker has environment 'video'" in str(note["message"])
    assert await _note(store, plain) is None
    await _live_worker(store, "w-video", PublishedEnvironment("video", OTHER_HASH))
    assert await _note(store, wanted) is None


async def test_a_pinned_hash_that_no_worker_runs_names_the_hashes_live(store: Store) -> None:
    key = await _key(store)
    pinned = await _submit(store, key, age=1,
                           environment=EnvironmentRequest("sdxl-tools", "abcdef"))
    await _live_worker(store, "w1", PublishedEnvironment("sdxl-tools", SDXL_HASH))
    note = await _note(store, pinned)
    assert note is not None
    assert note["environment"] == "sdxl-tools@abcdef"
    assert SDXL_HASH[:12] in str(note["message"])


async def test_a_departed_worker_does_not_count(store: Store) -> None:
    key = await _key(store)
    wanted = await _submit(store, key, age=1, environment=EnvironmentRequest("video"))
    await _live_worker(store, "w-video", PublishedEnvironment("video", OTHER_HASH))
    execution = await store.executions.execution(wanted)
    assert execution is not None
    assert await waiting_for(execution, store, time.time() - 30) is None
    note = await waiting_for(execution, store, time.time() + 1)  # its heartbeat is too old
    assert note is not None
    assert note["live_workers"] == 0


async def test_a_job_whose_gpu_types_no_live_worker_takes_says_so(store: Store) -> None:
    key = await _key(store)
    t4 = await _submit(store, key, age=1, gpu_types=("T4",))
    await _live_worker(store, "w-h200", PublishedEnvironment(), gpu_type="H200", declared=True)
    note = await _note(store, t4)
    assert note is not None
    assert (note["code"], note["gpu_types"]) == ("NO_WORKER_WITH_GPU_TYPE", ["T4"])
    # A worker that declares no GPU type takes every tier's jobs.
    await _live_worker(store, "w-any", PublishedEnvironment(), gpu_type="cpu")
    assert await _note(store, t4) is None


async def test_only_queued_jobs_get_a_note(store: Store) -> None:
    key = await _key(store)
    wanted = await _submit(store, key, age=1, environment=EnvironmentRequest("video"))
    await store.executions.cancel(wanted, key.id, "user_requested", time.time())
    assert await _note(store, wanted) is None


async def test_published_verified_packs_count_unless_a_worker_flagged_them(
        store: Store) -> None:
    await _live_worker(store, "w1", PublishedEnvironment(
        "sdxl-tools", SDXL_HASH, verified_packs=("clean-pack", "shared-pack"),
        flagged_packs=("risky-pack",)))
    await _live_worker(store, "w2", PublishedEnvironment(
        "video", OTHER_HASH, verified_packs=("video-pack",), flagged_packs=("shared-pack",)))
    cache = CatalogCache(store, max_age=3600)
    assert await cache.current() is not None
    assert cache.verified_node_packs == frozenset({"clean-pack", "video-pack"})


async def test_republishing_without_an_environment_clears_it(store: Store) -> None:
    await _live_worker(store, "w1", PublishedEnvironment("sdxl-tools", SDXL_HASH,
                                                         verified_packs=("clean-pack",)))
    await store.workers.publish_catalog("w1", '{"EmptyImage": {}}')
    [worker] = await store.workers.live_workers(time.time() - 30)
    assert (worker.environment, worker.environment_hash) == (None, None)
    assert (await store.workers.node_packs(time.time() - 30)).verified == frozenset()
