"""Bodies of the webhook routes: registered endpoints, each execution's delivery log, a
redelivery (spec §4)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "DeliveryAttempt",
    "DeliveryLog",
    "EndpointDeleted",
    "EndpointList",
    "Redelivery",
    "WebhookEndpoint",
    "WebhookEventLog",
]

_ENDPOINT: dict[str, Any] = {
    "id": "whe_3f2a1b0c9d8e7f6a", "url": "https://api.client.com/comfyui/system",
    "events": ["system.maintenance", "model.updated"], "created_at": "2024-08-31T10:00:00Z",
    "active": True, "disabled_reason": None,
}


class WebhookEndpoint(BaseModel):
    """201 from `POST /v1/webhooks`: a registered endpoint (its secret is never shown)."""

    model_config = ConfigDict(json_schema_extra={"examples": [_ENDPOINT]})

    id: str
    url: str
    events: list[str]
    created_at: str | None
    active: bool
    disabled_reason: str | None = Field(description="Why deliveries to it stopped, if so")


class EndpointList(BaseModel):
    """200 from `GET /v1/webhooks`."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"webhooks": [_ENDPOINT]}]})

    webhooks: list[WebhookEndpoint]


class EndpointDeleted(BaseModel):
    """200 from `DELETE /v1/webhooks/{endpoint_id}`."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"id": "whe_3f2a1b0c9d8e7f6a", "deleted": True}]})

    id: str
    deleted: Literal[True]


class DeliveryAttempt(BaseModel):
    delivery_attempt: int
    at: str | None
    status_code: int | None = Field(description="Null when no answer came")
    latency_ms: float | None
    error: str | None
    response_body: str | None
    response_truncated: bool


class WebhookEventLog(BaseModel):
    event_id: str
    event_type: str
    status: str = Field(description="`pending`, `delivered` or `failed`")
    url: str
    created_at: str | None
    attempts: int
    max_retries: int
    next_attempt_at: str | None = Field(description="Set while pending")
    deliveries: list[DeliveryAttempt]


class DeliveryLog(BaseModel):
    """200 from `GET /v1/workflows/{execution_id}/webhooks`."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "execution_id": "exec_7f9e8d2c4a1b",
        "events": [{
            "event_id": "evt_9a8b7c6d5e4f", "event_type": "execution.completed",
            "status": "delivered", "url": "https://api.client.com/comfyui/callback",
            "created_at": "2024-08-31T10:16:45Z", "attempts": 1, "max_retries": 3,
            "next_attempt_at": None,
            "deliveries": [{"delivery_attempt": 1, "at": "2024-08-31T10:16:45Z",
                            "status_code": 200, "latency_ms": 84.2, "error": None,
                            "response_body": "ok", "response_truncated": False}],
        }],
    }]})

    execution_id: str
    events: list[WebhookEventLog]


class Redelivery(BaseModel):
    """202 from `POST …/webhooks/{event_id}/redeliver`: the event is queued again."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"event_id": "evt_9a8b7c6d5e4f", "status": "pending", "max_retries": 4}]})

    event_id: str
    status: Literal["pending"]
    max_retries: int
