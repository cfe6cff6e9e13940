"""Endpoints a key registers for system events: POST, GET and DELETE /v1/webhooks.
A secret is accepted, used to sign, and never returned."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from comfy_serverless.api.bodies import answer
from comfy_serverless.api.bodies.webhooks import EndpointDeleted, EndpointList, WebhookEndpoint
from comfy_serverless.api.deps import SecretKey, ServicesDep
from comfy_serverless.api.schemas import error_responses
from comfy_serverless.errors import ApiError, RequestInvalid
from comfy_serverless.timefmt import utc_iso
from comfy_serverless.webhooks.ssrf import check_webhook_url
from comfy_serverless.webhooks.system_events import SYSTEM_EVENTS

__all__ = ["router"]

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])


class EndpointNotFound(ApiError):
    status_code = 404
    error_code = "WEBHOOK_ENDPOINT_NOT_FOUND"


class EndpointLimitReached(ApiError):
    status_code = 409
    error_code = "WEBHOOK_ENDPOINT_LIMIT"


class EndpointCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(max_length=2048)
    events: list[str] = Field(min_length=1)
    secret: str | None = Field(default=None, max_length=512)


def _view(row: dict[str, Any]) -> dict[str, Any]:
    return {"id": row["id"], "url": row["url"], "events": row["events"],
            "created_at": utc_iso(row["created_at"]),
            "active": row["disabled_at"] is None, "disabled_reason": row["disabled_reason"]}


@router.post("", status_code=201, response_model=None,
             responses={**answer(201, WebhookEndpoint), **error_responses(409)})
async def register(body: EndpointCreate, key: SecretKey, services: ServicesDep
                   ) -> JSONResponse:
    unknown = sorted(set(body.events) - {*SYSTEM_EVENTS, "*"})
    if unknown:
        raise RequestInvalid(f"Unknown event types: {', '.join(unknown)}",
                       {"unknown": unknown, "supported": [*SYSTEM_EVENTS, "*"]})
    await check_webhook_url(body.url, services.settings.webhook_policy(), field="url")
    most = services.settings.webhook_max_endpoints_per_key
    endpoint_id = await services.store.webhooks.register(key.id, body.url, body.secret,
                                                         body.events, most)
    if endpoint_id is None:
        raise EndpointLimitReached(
            f"This key already has {most} webhook endpoints; delete one first",
            {"max_endpoints": most})
    [row] = [e for e in await services.store.webhooks.endpoints(key.id) if e["id"] == endpoint_id]
    return JSONResponse(_view(row), status_code=201)


@router.get("", response_model=None, responses=answer(200, EndpointList))
async def list_endpoints(key: SecretKey, services: ServicesDep) -> dict[str, Any]:
    return {"webhooks": [_view(row) for row in await services.store.webhooks.endpoints(key.id)]}


@router.delete("/{endpoint_id}", response_model=None,
               responses=answer(200, EndpointDeleted))
async def unregister(endpoint_id: str, key: SecretKey, services: ServicesDep
                     ) -> dict[str, Any]:
    if not await services.store.webhooks.unregister(endpoint_id, key.id):
        raise EndpointNotFound(f"No webhook endpoint {endpoint_id!r} for this key",
                               {"id": endpoint_id})
    return {"id": endpoint_id, "deleted": True}
