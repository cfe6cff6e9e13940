"""Liveness and readiness probes for load balancers."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from comfy_serverless.api.deps import ServicesDep
from comfy_serverless.errors import StoreError

__all__ = ["router"]

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, Any]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(services: ServicesDep) -> JSONResponse:
    try:
        await services.store.live_worker_count(0.0)
    except StoreError as exc:
        return JSONResponse({"status": "unavailable", "store": str(exc)}, status_code=503)
    return JSONResponse({"status": "ready", "store": services.store.dialect})
