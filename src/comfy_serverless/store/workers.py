"""The workers' side of the store: heartbeats, the live fleet, the node catalogs workers
publish (each distinct /object_info stored once), and small shared facts (compare-and-set)."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

from comfy_serverless.store.connector import Connector
from comfy_serverless.store.records import WorkerState
from comfy_serverless.store.writing import dumps

__all__ = ["WorkerStore"]


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
             "warm_models": json.dumps(sorted(worker.warm_models))},
        )

    async def live_workers(self, since: float) -> list[WorkerState]:
        rows = await self._db.fetch_all(self._sql["live_workers"], {"since": since})
        return [WorkerState(row["id"], row["state"], row["gpu_type"],
                            json.loads(row["system_stats"]) if row["system_stats"] else None,
                            None, row["region"]) for row in rows]

    async def publish_catalog(self, worker_id: str, object_info_json: str
                              ) -> tuple[str, str | None]:
        """Record a worker's /object_info (stored once per distinct content): the new hash,
        and the one it replaces."""
        digest = hashlib.sha256(object_info_json.encode()).hexdigest()
        before = await self._db.fetch_one(self._sql["worker_catalog_hash"],
                                          {"worker_id": worker_id})
        previous = before["catalog_hash"] if before else None
        async with self._db.transaction() as tx:
            await tx.execute(self._sql["insert_catalog"],
                             {"hash": digest, "object_info": object_info_json, "now": time.time()})
            await tx.execute(self._sql["set_worker_catalog"],
                             {"hash": digest, "worker_id": worker_id})
        return digest, previous

    async def catalog_hashes(self, since: float) -> set[str]:
        """The catalogs of the workers heard from since `since`."""
        rows = await self._db.fetch_all(self._sql["catalog_hashes_since"], {"since": since})
        return {str(row["hash"]) for row in rows}

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
