"""Each execution's webhook delivery log, and redelivery of an event."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from comfy_serverless.api.bodies import answer
from comfy_serverless.api.bodies.webhooks import DeliveryLog, Redelivery
from comfy_serverless.api.deps import CurrentKey, SecretKey, ServicesDep
from comfy_serverless.api.schemas import error_responses
from comfy_serverless.errors import ApiError, ExecutionNotFound
from comfy_serverless.store.records import WebhookDelivery, WebhookEvent
from comfy_serverless.timefmt import utc_iso

__all__ = ["router"]

router = APIRouter(prefix="/v1/workflows", tags=["webhooks"])


class WebhookEventNotFound(ApiError):
    status_code = 404
    error_code = "WEBHOOK_EVENT_NOT_FOUND"


class WebhookEventPending(ApiError):
    status_code = 409
    error_code = "WEBHOOK_EVENT_PENDING"


def _event_view(event: WebhookEvent, deliveries: list[WebhookDelivery]) -> dict[str, Any]:
    return {
        "event_id": event.id,
        "event_type": event.event_type,
        "status": event.status,
        "url": event.url,
        "created_at": utc_iso(event.created_at),
        "attempts": event.attempts,
        "max_retries": event.max_retries,
        "next_attempt_at": utc_iso(event.next_attempt_at) if event.status == "pending" else None,
        "deliveries": [
            {"delivery_attempt": d.attempt, "at": utc_iso(d.at), "status_code": d.status_code,
             "latency_ms": d.latency_ms, "error": d.error, "response_body": d.response_body,
             "response_truncated": d.response_truncated}
            for d in deliveries if d.event_id == event.id
        ],
    }


@router.get("/{execution_id}/webhooks", response_model=None,
            responses=answer(200, DeliveryLog))
async def delivery_log(execution_id: str, key: CurrentKey, services: ServicesDep
                       ) -> dict[str, Any]:
    if await services.store.executions.execution_for_key(execution_id, key.id) is None:
        raise ExecutionNotFound(execution_id)
    events, deliveries = await services.store.webhooks.log(execution_id)
    return {"execution_id": execution_id,
            "events": [_event_view(event, deliveries) for event in events]}


@router.post("/{execution_id}/webhooks/{event_id}/redeliver", status_code=202,
             response_model=None, responses={**answer(202, Redelivery), **error_responses(409)})
async def redeliver(execution_id: str, event_id: str, key: SecretKey, services: ServicesDep
                    ) -> JSONResponse:
    if await services.store.executions.execution_for_key(execution_id, key.id) is None:
        raise ExecutionNotFound(execution_id)
    events, _ = await services.store.webhooks.log(execution_id)
    event = next((e for e in events if e.id == event_id), None)
    if event is None:
        raise WebhookEventNotFound(f"No webhook event {event_id!r} for this execution",
                                   {"execution_id": execution_id, "event_id": event_id})
    extra = services.settings.webhook_max_retries
    if not await services.store.webhooks.redeliver(event_id, execution_id, extra):
        raise WebhookEventPending(f"Event {event_id} is still being delivered",
                                  {"event_id": event_id, "status": event.status})
    return JSONResponse({"event_id": event_id, "status": "pending",
                         "max_retries": event.attempts + extra}, status_code=202)
