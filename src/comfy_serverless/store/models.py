"""The models' side of the store: each worker's model folders, preload requests, and the
measured figures (load times, run times) that the model list reports."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from comfy_serverless.store.connector import Connector, Row
from comfy_serverless.store.records import _json_or_none

__all__ = ["FileSource", "FleetModelFile", "ModelFile", "ModelPreload", "ModelRegistry"]


@dataclass(frozen=True)
class FileSource:
    """A source a cached file was fetched from: its display form (no query string, no
    credential), the host a tier's `model_sources` allowlist is matched against, and the
    cache's key of the source (what a job's required models name it by)."""

    display: str
    host: str
    key: str

    @classmethod
    def from_json(cls, value: Any) -> FileSource | None:
        if not isinstance(value, dict):
            return None
        display, host, key = (value.get(name) for name in ("display", "host", "key"))
        if isinstance(display, str) and isinstance(host, str) and isinstance(key, str):
            return cls(display, host, key)
        return None


@dataclass(frozen=True)
class ModelFile:
    """One file of a ComfyUI model folder (`folder` is ComfyUI's name: checkpoints, loras…).
    `sources` is not empty for a file placed from the worker's model cache."""

    folder: str
    filename: str
    size_bytes: int
    mtime: float
    sha256: str | None = None
    capabilities: dict[str, Any] | None = None
    sources: tuple[FileSource, ...] = ()

    def sources_json(self) -> str | None:
        return json.dumps([source.__dict__ for source in self.sources]) if self.sources \
            else None


def _sources(value: Any) -> tuple[FileSource, ...]:
    items = _json_or_none(value) or []
    return tuple(source for source in map(FileSource.from_json, items) if source is not None)


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
                         _json_or_none(row["capabilities"]), _sources(row["sources"]))
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
    # A preload by source: the value the client gave, its sha256 pin, and the requesting
    # tier's model_sources (the workers fetch under that policy). `filename` is then the
    # placed name when the pin makes it known, else the source's file name.
    source: str | None = None
    source_sha256: str | None = None
    allowed_hosts: tuple[str, ...] = ()

    @classmethod
    def from_row(cls, row: Row) -> ModelPreload:
        return cls(**{**row, "regions": _json_or_none(row["regions"]),
                      "allowed_hosts": tuple(_json_or_none(row["allowed_hosts"]) or ())})

    def params(self) -> dict[str, Any]:
        return {**self.__dict__, "regions": None if self.regions is None
                else json.dumps(self.regions),
                "allowed_hosts": json.dumps(list(self.allowed_hosts)) if self.source else None}

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
                 "capabilities": None if f.capabilities is None else json.dumps(f.capabilities),
                 "sources": f.sources_json()}
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

    async def placed_files(self, since: float) -> dict[str, tuple[FileSource, ...]]:
        """The names of the files placed from the model caches of the workers heard from
        since `since` (stopped or not, as for their catalogs), each with the sources it
        was fetched from (over every worker that has it)."""
        placed: dict[str, set[FileSource]] = {}
        for row in await self._db.fetch_all(self._sql["placed_models"], {"since": since}):
            placed.setdefault(row["filename"], set()).update(_sources(row["sources"]))
        return {name: tuple(sorted(sources, key=lambda s: s.display))
                for name, sources in placed.items()}

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
