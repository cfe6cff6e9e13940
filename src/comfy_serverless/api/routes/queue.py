"""GET /v1/queue/status (spec §1.5)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from comfy_serverless.api.bodies import answer
from comfy_serverless.api.bodies.fleet import QueueStatus
from comfy_serverless.api.deps import SecretKey, ServicesDep
from comfy_serverless.executions.queue_status import queue_status

__all__ = ["router"]

router = APIRouter(prefix="/v1/queue", tags=["queue"])


@router.get("/status", response_model=None, responses=answer(200, QueueStatus))
async def status(key: SecretKey, services: ServicesDep) -> dict[str, Any]:
    return await queue_status(services.store, live_window=services.settings.live_window())
