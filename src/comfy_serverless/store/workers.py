"""The workers' side of the store: heartbeats, the live fleet, the node catalogs workers
publish (each distinct /object_info stored once) with the environment each runs, and small
shared facts (compare-and-set). The environments workers have published are remembered
after the workers are gone (`environment_seen`)."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any

from comfy_serverless.store.connector import Connector
from comfy_serverless.store.records import WorkerState
from comfy_serverless.store.writing import dumps

__all__ = ["NodePacks", "PublishedEnvironment", "WorkerPacks", "WorkerStore"]


@dataclass(frozen=True)
class PublishedEnvironment:
    """What a worker publishes of the environment its engine runs, with its catalog: its name
    and hash, and its node packs, told apart by whether the install's scan flagged them."""

    name: str | None = None
    hash: str | None = None
    verified_packs: tuple[str, ...] = ()
    flagged_packs: tuple[str, ...] = ()

    def params(self) -> dict[str, Any]:
        packs = ({"verified": sorted(self.verified_packs), "flagged": sorted(self.flagged_packs)}
                 if self.name is not None else None)
        return {"environment_name": self.name, "environment_hash": self.hash,
                "node_packs": None if packs is None else json.dumps(packs)}


@dataclass(frozen=True)
class NodePacks:
    """The node packs that workers publish, by what their installs' scans found."""

    verified: frozenset[str] = frozenset()
    flagged: frozenset[str] = frozenset()


@dataclass(frozen=True)
class WorkerPacks:
    """One live worker's catalog (by hash) and the node packs it publishes: a pack it does
    not list as verified (no environment, or one that does not list it) it does not vouch
    for, even when its catalog has the pack's nodes."""

    catalog_hash: str
    packs: NodePacks


class WorkerStore:
    def __init__(self, connector: Connector, queries: dict[str, str]) -> None:
        self._db = connector
        self._sql = queries

    async def heartbeat_worker(self, worker: WorkerState) -> None:
        await self._db.execute(
            self._sql["upsert_worker"],
            {"id": worker.id, "now": time.time(), "state": worker.state,
             "gpu_type": worker.gpu_type, "system_stats": dumps(worker.system_stats),
             "current_execution_id": worker.current_execution_id, "region": worker.region,
             "warm_models": json.dumps(sorted(worker.warm_models)),
             "gpu_type_declared": int(worker.gpu_type_declared)},
        )

    async def live_workers(self, since: float) -> list[WorkerState]:
        rows = await self._db.fetch_all(self._sql["live_workers"], {"since": since})
        return [WorkerState(row["id"], row["state"], row["gpu_type"],
                            json.loads(row["system_stats"]) if row["system_stats"] else None,
                            None, row["region"],
                            gpu_type_declared=bool(row["gpu_type_declared"]),
                            environment=row["environment_name"],
                            environment_hash=row["environment_hash"]) for row in rows]

    async def publish_catalog(self, worker_id: str, object_info_json: str,
                              environment: PublishedEnvironment = PublishedEnvironment()
                              ) -> tuple[str, str | None]:
        """Record a worker's /object_info (stored once per distinct content) and the
        environment it runs: the new hash, and the one it replaces."""
        digest = hashlib.sha256(object_info_json.encode()).hexdigest()
        before = await self._db.fetch_one(self._sql["worker_catalog_hash"],
                                          {"worker_id": worker_id})
        previous = before["catalog_hash"] if before else None
        async with self._db.transaction() as tx:
            await tx.execute(self._sql["insert_catalog"],
                             {"hash": digest, "object_info": object_info_json, "now": time.time()})
            await tx.execute(self._sql["set_worker_catalog"],
                             {"hash": digest, "worker_id": worker_id, **environment.params()})
            if environment.name is not None:
                await tx.execute(self._sql["insert_environment_seen"],
                                 {"name": environment.name, "now": time.time(),
                                  "hash": (environment.hash or "").lower()})
        return digest, previous

    async def environment_seen(self, name: str, hash_prefix: str | None) -> bool:
        """Whether some worker, live or gone, has ever published environment `name` (at a
        hash starting with `hash_prefix`, lowercase hex, when one is given)."""
        row = await self._db.fetch_one(self._sql["environment_seen"],
                                       {"name": name, "hash_prefix": hash_prefix or ""})
        return row is not None

    async def catalog_hashes(self, since: float) -> set[str]:
        """The catalogs of the workers heard from since `since`."""
        rows = await self._db.fetch_all(self._sql["catalog_hashes_since"], {"since": since})
        return {str(row["hash"]) for row in rows}

    async def worker_packs(self, since: float) -> list[WorkerPacks]:
        """Each worker heard from since `since` that published a catalog: its catalog's
        hash and the node packs it publishes."""
        rows = await self._db.fetch_all(self._sql["worker_packs_since"], {"since": since})
        return [WorkerPacks(str(row["catalog_hash"]), _packs(row["node_packs"]))
                for row in rows]

    async def node_packs(self, since: float) -> NodePacks:
        """The node packs that the workers heard from since `since` publish, all together."""
        published = [worker.packs for worker in await self.worker_packs(since)]
        return NodePacks(frozenset().union(*(packs.verified for packs in published)),
                         frozenset().union(*(packs.flagged for packs in published)))

    async def catalog(self, digest: str) -> dict[str, Any] | None:
        row = await self._db.fetch_one(self._sql["catalog_by_hash"], {"hash": digest})
        return json.loads(row["object_info"]) if row else None

    async def swap_state(self, key: str, old: str, new: str) -> bool:
        """Compare-and-set a shared fact; True for the one process whose update won."""
        return await self._db.execute(self._sql["compare_and_set_state"],
                                      {"key": key, "old": old, "new": new}) == 1

    async def state(self, key: str) -> str | None:
        row = await self._db.fetch_one(self._sql["get_state"], {"key": key})
        return str(row["value"]) if row else None


def _packs(column: str | None) -> NodePacks:
    """A worker's `node_packs` column: {"verified": [...], "flagged": [...]}, or NULL."""
    if column is None:
        return NodePacks()
    packs = json.loads(column)
    return NodePacks(frozenset(str(pack) for pack in packs.get("verified") or ()),
                     frozenset(str(pack) for pack in packs.get("flagged") or ()))
