"""The spec's model endpoints (§1.4): the fleet's models, and preloading them."""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from pydantic import Field

from comfy_serverless.access.admission import check_model_references
from comfy_serverless.api.bodies import answer
from comfy_serverless.api.bodies.fleet import ModelList, PreloadScheduled
from comfy_serverless.api.deps import CurrentKey, SecretKey, ServicesDep
from comfy_serverless.api.schemas import RequestBody, StrictModel, error_responses
from comfy_serverless.models.listing import ModelQuery, model_list
from comfy_serverless.models.preload import PreloadPolicy, PreloadWanted, schedule_preloads

__all__ = ["router"]

router = APIRouter(prefix="/v1/models", tags=["models"])

MAX_LIST_LIMIT = 200
MAX_CACHE_DURATION = 7 * 86_400


class PreloadModel(StrictModel):
    model_id: str = Field(min_length=1, max_length=512)
    priority: int = Field(default=5, ge=1, le=10)
    regions: list[Annotated[str, Field(min_length=1, max_length=64)]] | None = Field(
        default=None, max_length=32)


class PreloadRequest(RequestBody):
    models: list[PreloadModel] = Field(min_length=1, max_length=50)
    cache_duration: int = Field(default=3600, ge=1, le=MAX_CACHE_DURATION)


@router.get("/list", response_model=None, responses=answer(200, ModelList))
async def list_models(
    key: CurrentKey,
    services: ServicesDep,
    category: Annotated[str | None, Query(max_length=64)] = None,
    search: Annotated[str | None, Query(max_length=256)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIST_LIMIT)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    query = ModelQuery(category=category, search=search, limit=limit, offset=offset)
    return await model_list(services.store, query, live_window=services.settings.live_window())


@router.post("/preload", status_code=202, response_model=None,
             responses={**answer(202, PreloadScheduled), **error_responses(404, 422)})
async def preload(body: PreloadRequest, key: SecretKey, services: ServicesDep
                  ) -> JSONResponse:
    wanted = [PreloadWanted(m.model_id, m.priority, m.regions) for m in body.models]
    tier = services.access.limits(key)
    policy = PreloadPolicy(
        partial(check_model_references, tier=tier, policy=services.access.policy),
        services.settings.max_active_preloads_per_key)
    scheduled = await schedule_preloads(services.store, key.id, wanted, body.cache_duration,
                                        live_window=services.settings.live_window(), policy=policy)
    return JSONResponse(scheduled, status_code=202)
