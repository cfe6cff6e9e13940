"""Liveness and readiness probes for load balancers."""

from __future__ import annotations

import logging
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from comfy_serverless.api.bodies import answer
from comfy_serverless.api.bodies.service import Health, Readiness
from comfy_serverless.api.deps import ServicesDep
from comfy_serverless.errors import StoreError
from comfy_serverless.services import Services
from comfy_serverless.worker.worker import Worker

__all__ = ["router"]

log = logging.getLogger(__name__)
router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=None, responses=answer(200, Health))
async def healthz() -> dict[str, Any]:
    return {"status": "ok"}


@router.get("/readyz", response_model=None,
            responses={**answer(200, Readiness), **answer(503, Readiness)})
async def readyz(request: Request, services: ServicesDep) -> JSONResponse:
    """Ready when the store answers and, with an embedded worker, its ComfyUI is connected
    and its warm-up (when one is configured) has finished. With several API processes the
    others read that from the embedded worker's heartbeat."""
    try:
        await services.store.metrics.live_worker_count(0.0)
    except StoreError as exc:
        # Unauthenticated: the driver's words (hosts, paths, users) go to the log only.
        log.warning("readiness: the store does not answer: %s", exc)
        return JSONResponse({"status": "unavailable", "store": "unavailable"},
                            status_code=503)
    worker: Worker | None = getattr(request.app.state, "worker", None)
    engine = _engine_state(worker) if worker is not None else (
        await _sibling_engine_state(services) if _worker_in_a_sibling(services) else None)
    body = {"status": "ready", "store": services.store.dialect, "engine": engine}
    if engine not in (None, "ready"):
        return JSONResponse({**body, "status": "unavailable"}, status_code=503)
    return JSONResponse(body)


def _engine_state(worker: Worker) -> str:
    """down (ComfyUI gone or not connected), warming (its warm-up not finished) or ready."""
    if not worker.engine_ready:
        return "down"
    return "ready" if worker.warmed_up else "warming"


def _worker_in_a_sibling(services: Services) -> bool:
    """This process serves beside the one that runs the embedded worker (api_processes)."""
    settings = services.settings
    return settings.embedded_worker and settings.api_processes > 1


async def _sibling_engine_state(services: Services) -> str:
    """The embedded worker's state as its last heartbeat says: down when it has sent none
    within the live window (its ComfyUI is not up, or the process is starting again)."""
    since = time.time() - services.settings.live_window()
    for worker in await services.store.workers.live_workers(since):
        if worker.id == services.settings.worker_id:
            return "warming" if worker.state == "warming" else "ready"
    return "down"
