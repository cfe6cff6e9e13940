"""POST /v1/models/preload: each named model is checked against the live workers' folders,
stored as a preload request, and picked up by the model keeper of every worker in the
requested regions that holds it; they keep it warm until the request expires.

A preload may name a source instead (checked by the caller exactly as a job's source:
parsed, the tier's allowlist, the SSRF rules, require_model_hashes). Every live worker of
the requested regions fetches it into its model cache, pins it there until the preload
expires, places it in the named folder and, where that folder's models load alone, keeps
it warm like a model_id preload (worker/source_preloads.py)."""

from __future__ import annotations

import difflib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from comfy_serverless.errors import ApiError
from comfy_serverless.models.categories import category_of, preloader_for
from comfy_serverless.models.listing import (
    FleetModel,
    HostCheck,
    fleet_models,
    model_id_of,
    visible_models,
)
from comfy_serverless.store.models import ModelPreload
from comfy_serverless.store.store import Store
from comfy_serverless.timefmt import utc_iso

__all__ = ["ModelNotFound", "ModelNotPreloadable", "PreloadLimitExceeded", "PreloadPolicy",
           "PreloadWanted", "SourceWanted", "schedule_preloads"]


class ModelNotFound(ApiError):
    status_code = 404
    error_code = "MODEL_NOT_FOUND"


class ModelNotPreloadable(ApiError):
    status_code = 422
    error_code = "MODEL_NOT_PRELOADABLE"


@dataclass(frozen=True)
class SourceWanted:
    """A source to preload, already checked against the asking key's tier: the value as
    given (the workers fetch it), its display form, its sha256 pin, the folder it goes in,
    the name it will have there (`<12 hex>-<file name>` when the pin makes it known, else
    the file name), and the tier's `model_sources` (the workers' policy for the fetch)."""

    value: str
    display: str
    sha256: str | None
    folder: str
    filename: str
    allowed_hosts: tuple[str, ...]

    @property
    def model_id(self) -> str:
        return model_id_of(category_of(self.folder), self.filename)

    @property
    def model_id_provisional(self) -> bool:
        """Whether `model_id` is not yet the one the list will show: an unpinned source's
        content, and so the `<12 hex>-` prefix of its placed name, is known only once a
        worker fetched it (the list's entry is then the one whose `file_info.source` is
        this display form, in this folder)."""
        return self.sha256 is None


@dataclass(frozen=True)
class PreloadWanted:
    """One entry of a preload request: a model of the fleet (`model_id`) or a source."""

    model_id: str | None
    priority: int
    regions: list[str] | None
    source: SourceWanted | None = None


def _resolve(wanted: list[PreloadWanted], models: list[FleetModel]) -> list[FleetModel]:
    by_id = {model.model_id: model for model in models}
    unknown = [w.model_id for w in wanted if w.model_id is not None and w.model_id not in by_id]
    if unknown:
        raise ModelNotFound(
            f"No live worker holds {', '.join(unknown)}",
            {"unknown_models": unknown,
             "suggestions": {name: difflib.get_close_matches(name, list(by_id), n=3)
                             for name in unknown},
             "models_url": "/v1/models/list"})
    resolved = [by_id[w.model_id] for w in wanted if w.model_id is not None]
    refused = [m.model_id for m in resolved if preloader_for(m.file.folder) is None]
    if refused:
        raise ModelNotPreloadable(
            f"{', '.join(refused)} cannot be loaded on its own",
            {"models": refused, "preloadable_categories": sorted(
                {m.category for m in models if preloader_for(m.file.folder) is not None})})
    return resolved


def _scheduled(preload: ModelPreload, workers: list[str], warm: bool,
               source: SourceWanted | None) -> dict[str, Any]:
    return {
        "preload_id": preload.id,
        "model_id": preload.model_id,
        "priority": preload.priority,
        "regions": preload.regions,
        "expires_at": utc_iso(preload.expires_at),
        "workers": workers,
        "warm_cache": warm,
        "source": source.display if source else None,
        "sha256": source.sha256 if source else None,
        "folder": preload.folder,
        "model_id_provisional": source is not None and source.model_id_provisional,
    }


@dataclass(frozen=True)
class PreloadPolicy:
    """What a key may preload: models of its tier's groups, and so many at once.

    `check_models` raises for any "<folder>/<file>" the key's tier may not use, and
    `may_fetch` says which source hosts its tier allows (a fetched file is named only by
    keys that could fetch it); the caller hands them in, so that the models package knows
    nothing of tiers.
    """

    check_models: Callable[[list[str]], None]
    max_active: int
    may_fetch: HostCheck


async def schedule_preloads(store: Store, api_key_id: str, wanted: list[PreloadWanted],
                            cache_duration: int, *, live_window: float,
                            policy: PreloadPolicy) -> dict[str, Any]:
    now = time.time()
    files = await store.models.fleet_files(now - live_window)
    models = iter(_resolve(wanted, visible_models(fleet_models(files), policy.may_fetch)))
    resolved = [None if w.model_id is None else next(models) for w in wanted]
    policy.check_models([f"{m.file.folder}/{m.file.filename}" for m in resolved if m])
    await _check_room(store, api_key_id, len(wanted), policy.max_active, now)
    preloads = [_preload(api_key_id, w, m, now, cache_duration)
                for w, m in zip(wanted, resolved, strict=True)]
    await store.models.add_preloads(preloads)
    live = {w.id: w.region for w in await store.workers.live_workers(now - live_window)}
    return {
        "status": "scheduled",
        "cache_duration": cache_duration,
        "preloads": [_scheduled(p, m.workers_in(p.regions), m.warm, None) if m else
                     _scheduled(p, _workers_in(live, p.regions), False, w.source)
                     for p, w, m in zip(preloads, wanted, resolved, strict=True)],
    }


def _workers_in(live: dict[str, str | None], regions: list[str] | None) -> list[str]:
    """The live workers a preload by source asks to fetch it: those of its regions."""
    return sorted(worker for worker, region in live.items() if not regions or region in regions)


def _preload(api_key_id: str, wanted: PreloadWanted, model: FleetModel | None, now: float,
             cache_duration: int) -> ModelPreload:
    base = ModelPreload(id=f"pre_{secrets.token_hex(8)}", api_key_id=api_key_id, model_id="",
                        folder="", filename="", priority=wanted.priority,
                        regions=wanted.regions or None, requested_at=now,
                        expires_at=now + cache_duration)
    if model is not None:
        return replace(base, model_id=model.model_id, folder=model.file.folder,
                       filename=model.file.filename)
    source = wanted.source
    assert source is not None, "a preload names a model_id or a source"
    return replace(base, model_id=source.model_id, folder=source.folder,
                   filename=source.filename, source=source.value, source_sha256=source.sha256,
                   allowed_hosts=source.allowed_hosts)


async def _check_room(store: Store, api_key_id: str, requested: int, max_active: int,
                      now: float) -> None:
    active = [p for p in await store.models.active_preloads(now) if p.api_key_id == api_key_id]
    if len(active) + requested > max_active:
        raise PreloadLimitExceeded(
            f"A key may keep at most {max_active} preloads active at once; "
            f"{len(active)} are active",
            {"active_preloads": len(active), "requested": requested,
             "max_active_preloads": max_active,
             "expires_next": utc_iso(min((p.expires_at for p in active), default=None))})


class PreloadLimitExceeded(ApiError):
    status_code = 429
    error_code = "PRELOAD_LIMIT_EXCEEDED"

