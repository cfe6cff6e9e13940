"""The models' side of the store: each worker's model folders, preload requests, and the
measured figures (load times, run times) that the model list reports."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from comfy_serverless.store.connector import Connector, Row
from comfy_serverless.store.records import _json_or_none

__all__ = ["FleetModelFile", "ModelFile", "ModelPreload", "ModelRegistry"]


@dataclass(frozen=True)
class ModelFile:
    """One file of a ComfyUI model folder (`folder` is ComfyUI's name: checkpoints, loras…)."""

    folder: str
    filename: str
    size_bytes: int
    mtime: float
    sha256: str | None = None
    capabilities: dict[str, Any] | None = None


@dataclass(frozen=True)
class FleetModelFile:
    """A model file on one live worker, with that worker's region and whether the model is
    warm in its ComfyUI now."""

    worker_id: str
    region: str | None
    warm: bool
    file: ModelFile

    @classmethod
    def from_row(cls, row: Row) -> FleetModelFile:
        warm_models = _json_or_none(row["warm_models"]) or []
        file = ModelFile(row["folder"], row["filename"], int(row["size_bytes"]),
                         float(row["mtime"]), row["sha256"],
                         _json_or_none(row["capabilities"]))
        return cls(row["worker_id"], row["region"], file.filename in warm_models, file)


@dataclass(frozen=True)
class ModelPreload:
    id: str
    api_key_id: str
    model_id: str
    folder: str
    filename: str
    priority: int
    regions: list[str] | None
    requested_at: float
    expires_at: float

    @classmethod
    def from_row(cls, row: Row) -> ModelPreload:
        return cls(**{**row, "regions": _json_or_none(row["regions"])})

    def params(self) -> dict[str, Any]:
        return {**self.__dict__, "regions": None if self.regions is None
                else json.dumps(self.regions)}

    def applies_to(self, region: str | None) -> bool:
        """Whether a worker in `region` should keep this model warm."""
        return not self.regions or region in self.regions


class ModelRegistry:
    def __init__(self, connector: Connector, queries: dict[str, str]) -> None:
        self._db = connector
        self._sql = queries

    async def publish(self, worker_id: str, files: Sequence[ModelFile]) -> None:
        """Replace what the store knows of this worker's model folders."""
        rows = [{"worker_id": worker_id, "folder": f.folder, "filename": f.filename,
                 "size_bytes": f.size_bytes, "mtime": f.mtime, "sha256": f.sha256,
                 "capabilities": None if f.capabilities is None else json.dumps(f.capabilities)}
                for f in files]
        async with self._db.transaction() as tx:
            await tx.execute(self._sql["delete_worker_models"], {"worker_id": worker_id})
            await tx.execute_many(self._sql["insert_worker_model"], rows)

    async def forget_departed(self, before: float) -> int:
        """Drop the model folders of workers silent since `before`, and preloads that
        expired before it; returns how many model files were dropped."""
        await self._db.execute(self._sql["forget_expired_preloads"], {"before": before})
        return await self._db.execute(self._sql["forget_departed_worker_models"],
                                      {"before": before})

    async def fleet_files(self, since: float) -> list[FleetModelFile]:
        """The model files of the workers heard from since `since`."""
        rows = await self._db.fetch_all(self._sql["fleet_models"], {"since": since})
        return [FleetModelFile.from_row(row) for row in rows]

    async def add_preloads(self, preloads: Sequence[ModelPreload]) -> None:
        await self._db.execute_many(self._sql["insert_preload"], [p.params() for p in preloads])

    async def active_preloads(self, now: float) -> list[ModelPreload]:
        rows = await self._db.fetch_all(self._sql["active_preloads"], {"now": now})
        return [ModelPreload.from_row(row) for row in rows]

    async def recent_load_times(self, limit: int = 1000) -> list[tuple[str, float]]:
        """(model file, seconds) of the latest loads that execution logs recorded."""
        rows = await self._db.fetch_all(self._sql["recent_model_loads"], {"limit": limit})
        loads = []
        for row in rows:
            details = _json_or_none(row["details"]) or {}
            if isinstance(details.get("model"), str) and details.get("load_time") is not None:
                loads.append((details["model"], float(details["load_time"])))
        return loads

    async def recent_run_times(self, limit: int = 1000) -> list[tuple[list[str], float]]:
        """(model files, seconds from start to end) of the latest completed executions that
        loaded models."""
        rows = await self._db.fetch_all(self._sql["recent_model_runs"], {"limit": limit})
        return [(list(_json_or_none(row["required_models"]) or []), float(row["seconds"]))
                for row in rows]
