"""The model list (spec §1.4): what the live workers' model folders hold, one entry per
model file, with measured figures from the store.

- `model_id` is `<category>/<path in its folder, without extension>` (unique and stable);
- `performance.memory_requirement` is the file's size (weights in memory ≈ on disk);
  `avg_inference_time` is the mean processing time of recent completed executions that
  loaded the model; `cache_priority` is the highest priority of an active preload, else
  its recent popularity (0 to 10, the most used model being 10);
- `availability.regions` are the configured regions of the workers that hold it,
  `warm_cache` whether it is in some worker's ComfyUI cache now, `load_time` the mean of the
  loads that execution logs measured;
- a file placed from a worker's model cache (fetched by source) carries `file_info.source`,
  the display form of a source it was fetched from (no query string, no credential). Such
  a file is listed only to a key whose tier could fetch one of its sources (`may_fetch`,
  the tier's `model_sources` allowlist, handed in by the caller), and names only those
  sources: a fetched model never shows to another tenant. Deny by default: a file whose
  name has the shape of a placed name (`loader_inputs.is_placed_name`) but that no record
  of sources comes with is listed to no key.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from statistics import fmean
from typing import Any

from comfy_serverless.engine.comfyui.stats import gigabytes
from comfy_serverless.errors import RequestInvalid
from comfy_serverless.loader_inputs import is_placed_name
from comfy_serverless.models.categories import CATEGORIES, category_of
from comfy_serverless.store.models import FileSource, FleetModelFile, ModelFile
from comfy_serverless.store.store import Store

__all__ = ["FleetModel", "HostCheck", "ModelQuery", "fleet_models", "model_id_of",
           "model_list", "visible_models"]

# Whether the asking key's tier may fetch from a source host (its model_sources allowlist).
HostCheck = Callable[[str], bool]


def model_id_of(category: str, filename: str) -> str:
    return f"{category}/{PurePosixPath(filename).with_suffix('')}"


@dataclass(frozen=True)
class ModelQuery:
    category: str | None = None
    search: str | None = None
    limit: int = 50
    offset: int = 0


@dataclass
class FleetModel:
    """One model file, over every live worker that holds it."""

    file: ModelFile
    category: str
    model_id: str
    # worker id → its configured region (None when it has none)
    workers: dict[str, str | None] = field(default_factory=dict)
    warm: bool = False
    # For a file placed from workers' model caches: the sources it was fetched from.
    sources: set[FileSource] = field(default_factory=set)

    def sources_for(self, may_fetch: HostCheck) -> list[FileSource]:
        """The sources a key whose tier passes `may_fetch` may see, by display form."""
        return sorted((s for s in self.sources if may_fetch(s.host)), key=lambda s: s.display)

    def visible_to(self, may_fetch: HostCheck) -> bool:
        """An ordinary file is seen by every key; a fetched one (or one named as if it
        were) only by a key whose tier could fetch one of its sources."""
        if not self.sources and not is_placed_name(PurePosixPath(self.file.filename).name):
            return True
        return bool(self.sources_for(may_fetch))

    @property
    def regions(self) -> list[str]:
        return sorted({region for region in self.workers.values() if region})

    def workers_in(self, regions: list[str] | None) -> list[str]:
        """The workers holding it that a preload for `regions` reaches (None: all)."""
        return sorted(worker for worker, region in self.workers.items()
                      if not regions or region in regions)

    def matches(self, query: ModelQuery) -> bool:
        if query.category is not None and self.category != query.category:
            return False
        needle = (query.search or "").strip().lower()
        return not needle or needle in self.model_id.lower() or needle in self.file.filename.lower()

    def add(self, seen: FleetModelFile) -> None:
        self.workers[seen.worker_id] = seen.region
        self.warm = self.warm or seen.warm
        self.sources.update(seen.file.sources)
        if self.file.sha256 is None and seen.file.sha256 is not None:
            self.file = seen.file


def fleet_models(files: Iterable[FleetModelFile]) -> list[FleetModel]:
    """The live workers' files, one entry per (folder, file), sorted by model id."""
    models: dict[tuple[str, str], FleetModel] = {}
    for seen in files:
        key = (seen.file.folder, seen.file.filename)
        if key not in models:
            category = category_of(seen.file.folder)
            models[key] = FleetModel(seen.file, category, model_id_of(category, key[1]))
        models[key].add(seen)
    return sorted(models.values(), key=lambda model: model.model_id)


@dataclass(frozen=True)
class _Measures:
    load_times: dict[str, list[float]]
    run_times: dict[str, list[float]]
    preload_priority: dict[str, int]

    def popularity(self, filename: str) -> int:
        """0 to 10: its recent runs against the most used model's."""
        most = max(map(len, self.run_times.values()), default=0)
        return round(10 * len(self.run_times.get(filename, [])) / most) if most else 0


async def _measures(store: Store, now: float) -> _Measures:
    loads: dict[str, list[float]] = defaultdict(list)
    for model, seconds in await store.models.recent_load_times():
        loads[model].append(seconds)
    runs: dict[str, list[float]] = defaultdict(list)
    for models, seconds in await store.models.recent_run_times():
        for model in models:
            runs[model].append(seconds)
    priorities: Counter[str] = Counter()
    for preload in await store.models.active_preloads(now):
        priorities[preload.filename] = max(priorities[preload.filename], preload.priority)
    return _Measures(dict(loads), dict(runs), dict(priorities))


def _mean(values: list[float] | None) -> float | None:
    return round(fmean(values), 3) if values else None


def _hash(file: ModelFile) -> str | None:
    return f"sha256:{file.sha256}" if file.sha256 else None


def visible_models(models: Iterable[FleetModel], may_fetch: HostCheck) -> list[FleetModel]:
    return [model for model in models if model.visible_to(may_fetch)]


def _entry(model: FleetModel, measures: _Measures, may_fetch: HostCheck) -> dict[str, Any]:
    file = model.file
    name = PurePosixPath(file.filename).stem
    sources = model.sources_for(may_fetch)
    return {
        "model_id": model.model_id,
        "name": name,
        "category": model.category,
        "file_info": {"filename": file.filename, "size_bytes": file.size_bytes,
                      "hash": _hash(file), "folder": file.folder,
                      "source": sources[0].display if sources else None},
        "capabilities": file.capabilities or {},
        "performance": {
            "memory_requirement": gigabytes(file.size_bytes),
            "avg_inference_time": _mean(measures.run_times.get(file.filename)),
            "cache_priority": measures.preload_priority.get(
                file.filename, measures.popularity(file.filename)),
        },
        "availability": {
            "regions": model.regions,
            "warm_cache": model.warm,
            "load_time": _mean(measures.load_times.get(file.filename)),
            "workers": len(model.workers),
        },
    }


def _check_category(category: str | None, models: list[FleetModel]) -> None:
    """ComfyUI's own categories, and any folder (a custom node's) that a worker has."""
    known = CATEGORIES | {model.category for model in models}
    if category is not None and category not in known:
        raise RequestInvalid(f"Unknown model category {category!r}",
                             {"field": "category", "allowed": sorted(known)})


async def model_list(store: Store, query: ModelQuery, *, live_window: float,
                     may_fetch: HostCheck) -> dict[str, Any]:
    now = time.time()
    models = visible_models(fleet_models(await store.models.fleet_files(now - live_window)),
                            may_fetch)
    _check_category(query.category, models)
    matching = [model for model in models if model.matches(query)]
    page = matching[query.offset:query.offset + query.limit]
    measures = await _measures(store, now) if page else _Measures({}, {}, {})
    return {
        "models": [_entry(model, measures, may_fetch) for model in page],
        "pagination": {"total": len(matching), "limit": query.limit, "offset": query.offset,
                       "has_more": query.offset + len(page) < len(matching)},
    }
