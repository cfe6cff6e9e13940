"""What workers publish of their environments, on SQLite and PostgreSQL alike, as the API
reads it: a node pack counts as verified only when every live worker whose catalog has its
nodes vouches for it (a worker with no environment, or one that does not list the pack,
does not), and a node class only when every worker's copy of it comes from such a pack;
the environments some worker has ever published are remembered after it is gone, so that a
submit for one that no worker ever ran can be refused."""

from __future__ import annotations

import json

import pytest

from comfy_serverless.errors import ApiError
from comfy_serverless.executions.catalogs import CatalogCache, verified_packs
from comfy_serverless.store.records import WorkerState
from comfy_serverless.store.store import Store
from comfy_serverless.store.workers import NodePacks, PublishedEnvironment, WorkerPacks
from comfy_serverless.validation.rules import ValidationRules
from comfy_serverless.validation.validator import WorkflowValidator
from comfy_serverless.validation.workflow import parse_workflow

NO_ENVIRONMENT = PublishedEnvironment()
SDXL_HASH = "3f2a9c" + "1" * 58
OTHER_HASH = "77aa00" + "2" * 58


def _catalog(*packs: str) -> str:
    """A catalog with a core node and one node from each custom node pack named."""
    info: dict[str, object] = {"EmptyImage": {"python_module": "nodes"}}
    for pack in packs:
        info[f"{pack}_node"] = {"python_module": f"custom_nodes.{pack}.nodes"}
    return json.dumps(info, sort_keys=True)


async def _publish(store: Store, worker_id: str, catalog: str,
                   environment: PublishedEnvironment = NO_ENVIRONMENT, *,
                   state: str = "idle") -> None:
    await store.workers.heartbeat_worker(WorkerState(worker_id, state, "cpu", None, None))
    await store.workers.publish_catalog(worker_id, catalog, environment)


async def _verified(store: Store) -> frozenset[str]:
    cache = CatalogCache(store, max_age=3600, refresh_seconds=0)
    assert await cache.current() is not None
    return cache.verified_node_packs


async def test_a_worker_with_the_pack_unscanned_makes_it_unverified(store: Store) -> None:
    await _publish(store, "w-a", _catalog("foo"),
                   PublishedEnvironment("sdxl-tools", SDXL_HASH, verified_packs=("foo",)))
    await _publish(store, "w-b", _catalog("foo"))  # hand-installed foo: no record
    assert await _verified(store) == frozenset()


async def test_a_pack_every_worker_with_it_verified_is_verified(store: Store) -> None:
    await _publish(store, "w-a", _catalog("foo"),
                   PublishedEnvironment("sdxl-tools", SDXL_HASH, verified_packs=("foo",)))
    await _publish(store, "w-b", _catalog("foo", "bar"),
                   PublishedEnvironment("video", OTHER_HASH, verified_packs=("foo", "bar")))
    assert await _verified(store) == frozenset({"foo", "bar"})


async def test_a_worker_without_the_pack_does_not_count(store: Store) -> None:
    await _publish(store, "w-a", _catalog("foo"),
                   PublishedEnvironment("sdxl-tools", SDXL_HASH, verified_packs=("foo",)))
    await _publish(store, "w-b", _catalog("other"))  # no record, no foo
    assert await _verified(store) == frozenset({"foo"})


async def test_an_environment_that_does_not_list_the_pack_does_not_vouch_for_it(
        store: Store) -> None:
    await _publish(store, "w-a", _catalog("foo"),
                   PublishedEnvironment("sdxl-tools", SDXL_HASH, verified_packs=("foo",)))
    await _publish(store, "w-b", _catalog("foo", "bar"),
                   PublishedEnvironment("video", OTHER_HASH, verified_packs=("bar",)))
    assert await _verified(store) == frozenset({"bar"})


async def test_the_verified_packs_follow_a_worker_that_republishes(store: Store) -> None:
    clean = PublishedEnvironment("sdxl-tools", SDXL_HASH, verified_packs=("foo",))
    await _publish(store, "w-a", _catalog("foo"), clean)
    cache = CatalogCache(store, max_age=3600, refresh_seconds=0)
    await cache.current()
    assert cache.verified_node_packs == frozenset({"foo"})
    await _publish(store, "w-b", _catalog("foo"))
    await cache.current()
    assert cache.verified_node_packs == frozenset()
    await _publish(store, "w-b", _catalog("foo"), clean)  # same catalog, now with its record
    await cache.current()
    assert cache.verified_node_packs == frozenset({"foo"})


def _shared_class(pack: str) -> str:
    """A catalog whose output node `Shared` comes from `pack`."""
    return json.dumps({"Shared": {"python_module": f"custom_nodes.{pack}.nodes",
                                  "output_node": True, "input": {}, "output": []}})


async def _validates_shared(store: Store) -> bool:
    """Whether a job using `Shared` passes the API's validation (the merged catalog of the
    live workers, the packs they vouch for)."""
    cache = CatalogCache(store, max_age=3600, refresh_seconds=0)
    catalog = await cache.current()
    rules = ValidationRules().with_verified_packs(cache.verified_node_packs)
    try:
        WorkflowValidator(rules, catalog).validate(
            parse_workflow({"1": {"class_type": "Shared", "inputs": {}}}).graph)
    except ApiError:
        return False
    return True


@pytest.mark.parametrize(("vouched", "unvouched"), [("pack_a", "pack_b"), ("pack_b", "pack_a")])
async def test_a_class_one_worker_takes_from_an_unvouched_pack_is_refused(
        store: Store, vouched: str, unvouched: str) -> None:
    """Verified per node class: `Shared` comes from a verified pack on w-a, and from a pack
    nobody vouched for on w-b (which may claim the job): refused, whichever of the two
    catalogs the merge happens to read first (both ways round)."""
    await _publish(store, "w-a", _shared_class(vouched),
                   PublishedEnvironment("sdxl-tools", SDXL_HASH, verified_packs=(vouched,)))
    await _publish(store, "w-b", _shared_class(unvouched))
    assert not await _validates_shared(store)


async def test_a_class_from_the_same_verified_pack_everywhere_is_accepted(
        store: Store) -> None:
    await _publish(store, "w-a", _shared_class("pack_a"),
                   PublishedEnvironment("sdxl-tools", SDXL_HASH, verified_packs=("pack_a",)))
    await _publish(store, "w-b", _shared_class("pack_a"),
                   PublishedEnvironment("video", OTHER_HASH, verified_packs=("pack_a",)))
    assert await _validates_shared(store)


def test_a_worker_whose_catalog_is_unknown_vouches_only_for_its_own_packs() -> None:
    workers = [WorkerPacks("a", NodePacks(frozenset({"foo", "bar"}))),
               WorkerPacks("b", NodePacks(frozenset({"foo"}), frozenset({"risky"})))]
    assert verified_packs(workers, {"a": frozenset({"foo", "bar"})}) == frozenset({"foo"})
    assert verified_packs(workers, {"a": frozenset({"foo", "bar"}), "b": frozenset()}) == (
        frozenset({"foo", "bar"}))


async def test_an_environment_once_published_stays_known(store: Store) -> None:
    assert not await store.workers.environment_seen("video", None)
    await _publish(store, "w-video", _catalog(), PublishedEnvironment("video", OTHER_HASH))
    await _publish(store, "w-video", _catalog(), state="stopped")  # gone, without it
    assert await store.workers.environment_seen("video", None)
    assert await store.workers.environment_seen("video", OTHER_HASH[:6])
    assert await store.workers.environment_seen("video", OTHER_HASH)
    assert not await store.workers.environment_seen("video", SDXL_HASH[:6])
    assert not await store.workers.environment_seen("Video", None)
    assert not await store.workers.environment_seen("vide", None)


async def test_every_hash_a_name_ran_at_is_known(store: Store) -> None:
    await _publish(store, "w1", _catalog(), PublishedEnvironment("sdxl-tools", SDXL_HASH))
    await _publish(store, "w1", _catalog(), PublishedEnvironment("sdxl-tools", OTHER_HASH))
    await _publish(store, "w2", _catalog(), PublishedEnvironment("sdxl-tools", OTHER_HASH))
    assert await store.workers.environment_seen("sdxl-tools", SDXL_HASH[:8])
    assert await store.workers.environment_seen("sdxl-tools", OTHER_HASH[:8])
    assert not await store.workers.environment_seen("sdxl-tools", "abcdef")
