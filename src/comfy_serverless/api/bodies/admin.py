"""Bodies of the admin routes: maintenance notices and key administration."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["IssuedKey", "KeyList", "KeyView", "Limits", "MaintenanceAnnounced"]

_LIMITS: dict[str, Any] = {
    "requests_per_minute": 60, "burst_allowance": 20, "concurrent_executions": 10,
    "max_queue_size": 50, "monthly_quota": 1000, "timeout_limit": 1800,
    "models": ["all_models"], "gpu_types": ["T4", "A10G", "A100"],
    "dedicated_resources": False,
}
_KEY: dict[str, Any] = {
    "key_id": "key_5d4c3b2a1f0e", "name": "render farm", "type": "secret", "tier": "pro",
    "admin": False, "prefix": "comfyui_sk_3f9a", "created_at": "2024-08-31T10:00:00Z",
    "last_used_at": "2024-08-31T10:15:30Z", "rotated_at": None, "revoked_at": None,
    "custom_limits": {"concurrent_executions": 10}, "limits": _LIMITS,
}


class MaintenanceAnnounced(BaseModel):
    """202 from `POST /v1/admin/maintenance`: the notice is queued for every endpoint."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"event_type": "system.maintenance", "endpoints_notified": 4}]})

    event_type: Literal["system.maintenance"]
    endpoints_notified: int


class Limits(BaseModel):
    """The limits that apply to a key now: its tier's, with its custom limits (spec §2.2, §6.1)."""

    requests_per_minute: int
    burst_allowance: int
    concurrent_executions: int
    max_queue_size: int
    monthly_quota: int | None = Field(description="Null: no monthly quota")
    timeout_limit: int
    models: list[str]
    gpu_types: list[str]
    dedicated_resources: bool


class KeyView(BaseModel):
    """An API key without its secret: `GET`, `PATCH` and `DELETE /v1/admin/keys/{key_id}`."""

    model_config = ConfigDict(json_schema_extra={"examples": [_KEY]})

    key_id: str
    name: str | None
    type: Literal["secret", "public"]
    tier: str
    admin: bool
    prefix: str
    created_at: str | None
    last_used_at: str | None
    rotated_at: str | None
    revoked_at: str | None
    custom_limits: dict[str, Any]
    limits: Limits


class IssuedKey(KeyView):
    """201 from `POST /v1/admin/keys` and 200 from `…/rotate`: the key with its secret, shown
    this once only."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {**_KEY, "api_key": "comfyui_sk_3f9a0c1d2e3b4a5f6e7d8c9b0a1f2e3d"}]})

    api_key: str = Field(description="The secret: store it now, it is never shown again")


class KeyList(BaseModel):
    """200 from `GET /v1/admin/keys`."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"keys": [_KEY]}]})

    keys: list[KeyView]
