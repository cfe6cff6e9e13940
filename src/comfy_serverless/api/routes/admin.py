"""Administration, for admin-scoped keys only."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import Field

from comfy_serverless.api.bodies import answer
from comfy_serverless.api.bodies.admin import MaintenanceAnnounced
from comfy_serverless.api.deps import AdminKey, ServicesDep
from comfy_serverless.api.schemas import RequestBody
from comfy_serverless.webhooks.system_events import announce_maintenance

__all__ = ["router"]

router = APIRouter(prefix="/v1/admin", tags=["admin"])


class Maintenance(RequestBody):
    message: str = Field(min_length=1, max_length=2000)
    starts_at: str | None = None
    ends_at: str | None = None


@router.post("/maintenance", status_code=202, response_model=None,
             responses=answer(202, MaintenanceAnnounced))
async def maintenance(body: Maintenance, admin: AdminKey, services: ServicesDep
                      ) -> dict[str, Any]:
    endpoints = await announce_maintenance(services.store, body.message, body.starts_at,
                                           body.ends_at, services.settings.webhook_max_retries)
    return {"event_type": "system.maintenance", "endpoints_notified": endpoints}
