"""The spec's model endpoints (§1.4): the fleet's models, and preloading them."""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from pydantic import Field, model_validator

from comfy_serverless.access.admission import check_model_references
from comfy_serverless.access.tiers import Tier
from comfy_serverless.api.bodies import answer
from comfy_serverless.api.bodies.fleet import ModelList, PreloadScheduled
from comfy_serverless.api.deps import CurrentKey, SecretKey, ServicesDep
from comfy_serverless.api.schemas import RequestBody, StrictModel, error_responses
from comfy_serverless.errors import RequestInvalid
from comfy_serverless.executions.fetched_models import host_check
from comfy_serverless.executions.preload_sources import checked_preload_source
from comfy_serverless.models.listing import ModelQuery, model_list
from comfy_serverless.models.preload import PreloadPolicy, PreloadWanted, schedule_preloads
from comfy_serverless.services import Services

__all__ = ["router"]

router = APIRouter(prefix="/v1/models", tags=["models"])

MAX_LIST_LIMIT = 200
MAX_CACHE_DURATION = 7 * 86_400


class PreloadModel(StrictModel):
    """A model of the fleet (`model_id`), or a `source` to fetch (https, s3 or hf, as a
    job's loader input takes it) with its optional `sha256` and the model `folder` it goes
    in (`checkpoints`, `loras` …)."""

    model_id: str | None = Field(default=None, min_length=1, max_length=512)
    source: str | None = Field(default=None, min_length=1, max_length=2048)
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-fA-F]{64}$")
    folder: str | None = Field(default=None, min_length=1, max_length=64)
    priority: int = Field(default=5, ge=1, le=10)
    regions: list[Annotated[str, Field(min_length=1, max_length=64)]] | None = Field(
        default=None, max_length=32)

    @model_validator(mode="after")
    def _one_model(self) -> PreloadModel:
        if (self.model_id is None) == (self.source is None):
            raise ValueError("name either model_id or source")
        if self.source is None and (self.sha256 is not None or self.folder is not None):
            raise ValueError("sha256 and folder go with a source")
        return self


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
    return await model_list(services.store, query, live_window=services.settings.live_window(),
                            may_fetch=host_check(services.access.limits(key)))


@router.post("/preload", status_code=202, response_model=None,
             responses={**answer(202, PreloadScheduled), **error_responses(400, 403, 404, 422)})
async def preload(body: PreloadRequest, key: SecretKey, services: ServicesDep
                  ) -> JSONResponse:
    tier = services.access.limits(key)
    wanted = [await _wanted(index, model, services, tier) for index, model in
              enumerate(body.models)]
    policy = PreloadPolicy(
        partial(check_model_references, tier=tier, policy=services.access.policy),
        services.settings.max_active_preloads_per_key, host_check(tier))
    scheduled = await schedule_preloads(services.store, key.id, wanted, body.cache_duration,
                                        live_window=services.settings.live_window(), policy=policy)
    return JSONResponse(scheduled, status_code=202)


async def _wanted(index: int, model: PreloadModel, services: Services, tier: Tier
                  ) -> PreloadWanted:
    """One entry; a source is checked as a job's is, before anything connects to it."""
    if model.source is None:
        return PreloadWanted(model.model_id, model.priority, model.regions)
    if model.folder is None:
        raise RequestInvalid("A preload by source names the model folder it goes in",
                             {"field": f"models[{index}].folder"})
    source = await checked_preload_source(
        f"models[{index}]", model.source, model.sha256, model.folder,
        tier, services.settings)
    return PreloadWanted(None, model.priority, model.regions, source)
