"""POST /v1/models/preload: each named model is checked against the live workers' folders,
stored as a preload request, and picked up by the model keeper of every worker in the
requested regions that holds it; they keep it warm until the request expires."""

from __future__ import annotations

import difflib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from comfy_serverless.errors import ApiError
from comfy_serverless.models.categories import preloader_for
from comfy_serverless.models.listing import FleetModel, fleet_models
from comfy_serverless.store.models import ModelPreload
from comfy_serverless.store.store import Store
from comfy_serverless.timefmt import utc_iso

__all__ = ["ModelNotFound", "ModelNotPreloadable", "PreloadLimitExceeded", "PreloadPolicy",
           "PreloadWanted", "schedule_preloads"]


class ModelNotFound(ApiError):
    status_code = 404
    error_code = "MODEL_NOT_FOUND"


class ModelNotPreloadable(ApiError):
    status_code = 422
    error_code = "MODEL_NOT_PRELOADABLE"


@dataclass(frozen=True)
class PreloadWanted:
    model_id: str
    priority: int
    regions: list[str] | None


def _resolve(wanted: list[PreloadWanted], models: list[FleetModel]) -> list[FleetModel]:
    by_id = {model.model_id: model for model in models}
    unknown = [w.model_id for w in wanted if w.model_id not in by_id]
    if unknown:
        raise ModelNotFound(
            f"No live worker holds {', '.join(unknown)}",
            {"unknown_models": unknown,
             "suggestions": {name: difflib.get_close_matches(name, list(by_id), n=3)
                             for name in unknown},
             "models_url": "/v1/models/list"})
    resolved = [by_id[w.model_id] for w in wanted]
    refused = [m.model_id for m in resolved if preloader_for(m.file.folder) is None]
    if refused:
        raise ModelNotPreloadable(
            f"{', '.join(refused)} cannot be loaded on its own",
            {"models": refused, "preloadable_categories": sorted(
                {m.category for m in models if preloader_for(m.file.folder) is not None})})
    return resolved


def _scheduled(preload: ModelPreload, model: FleetModel) -> dict[str, Any]:
    return {
        "preload_id": preload.id,
        "model_id": preload.model_id,
        "priority": preload.priority,
        "regions": preload.regions,
        "expires_at": utc_iso(preload.expires_at),
        "workers": model.workers_in(preload.regions),
        "warm_cache": model.warm,
    }


@dataclass(frozen=True)
class PreloadPolicy:
    """What a key may preload: models of its tier's groups, and so many at once.

    `check_models` raises for any "<folder>/<file>" the key's tier may not use; the caller
    hands it in, so that the models package knows nothing of tiers.
    """

    check_models: Callable[[list[str]], None]
    max_active: int


async def schedule_preloads(store: Store, api_key_id: str, wanted: list[PreloadWanted],
                            cache_duration: int, *, live_window: float,
                            policy: PreloadPolicy) -> dict[str, Any]:
    now = time.time()
    models = _resolve(wanted, fleet_models(await store.models.fleet_files(now - live_window)))
    policy.check_models([f"{m.file.folder}/{m.file.filename}" for m in models])
    active = [p for p in await store.models.active_preloads(now) if p.api_key_id == api_key_id]
    if len(active) + len(models) > policy.max_active:
        raise PreloadLimitExceeded(
            f"A key may keep at most {policy.max_active} preloads active at once; "
            f"{len(active)} are active",
            {"active_preloads": len(active), "requested": len(models),
             "max_active_preloads": policy.max_active,
             "expires_next": utc_iso(min((p.expires_at for p in active), default=None))})
    preloads = [
        ModelPreload(id=f"pre_{secrets.token_hex(8)}", api_key_id=api_key_id,
                     model_id=model.model_id, folder=model.file.folder,
                     filename=model.file.filename, priority=w.priority,
                     regions=w.regions or None, requested_at=now,
                     expires_at=now + cache_duration)
        for w, model in zip(wanted, models, strict=True)
    ]
    await store.models.add_preloads(preloads)
    return {
        "status": "scheduled",
        "cache_duration": cache_duration,
        "preloads": [_scheduled(p, m) for p, m in zip(preloads, models, strict=True)],
    }


class PreloadLimitExceeded(ApiError):
    status_code = 429
    error_code = "PRELOAD_LIMIT_EXCEEDED"

