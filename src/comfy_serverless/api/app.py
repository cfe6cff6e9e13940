"""The FastAPI application: routes, error handlers, and the process's lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI

from comfy_serverless.api.contract import declare_error_answers
from comfy_serverless.api.docs_pages import serve_docs_pages
from comfy_serverless.api.edge import EdgeLimits, HttpEdge
from comfy_serverless.api.errors import install_error_handlers
from comfy_serverless.api.headers import ApiHeaders, version_headers
from comfy_serverless.api.log_context import ExecutionLogContext
from comfy_serverless.api.openapi import serve_document
from comfy_serverless.api.routes import (
    admin,
    convert,
    errors_pages,
    events,
    files,
    health,
    keys,
    metrics,
    models,
    queue,
    webhook_endpoints,
    webhooks,
    workflows,
)
from comfy_serverless.background import BackgroundService
from comfy_serverless.executions.events import StreamHub
from comfy_serverless.fleet.identity import check_fleet_identity
from comfy_serverless.services import (
    Services,
    build_engine,
    build_housekeeping,
    build_rescuer,
    build_worker,
    open_services,
)
from comfy_serverless.settings import Settings
from comfy_serverless.storage.cleaner import RetentionCleaner
from comfy_serverless.webhooks.dispatcher import DispatcherConfig, WebhookDispatcher
from comfy_serverless.webhooks.system_events import CapacityMonitor
from comfy_serverless.worker.worker import Worker

__all__ = ["API_VERSION", "create_app"]

log = logging.getLogger(__name__)

# The version of the HTTP API (the document's info.version), not of this software.
API_VERSION = "1.0.0"


def create_app(settings: Settings, *, with_worker: bool | None = None) -> FastAPI:
    """Build the app. With a worker (the embedded default), it also runs one ComfyUI."""
    run_worker = settings.embedded_worker if with_worker is None else with_worker

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with _process_running(app, settings, run_worker=run_worker):
            yield

    app = FastAPI(title=settings.api_title, version=API_VERSION,
                  description=settings.api_description, lifespan=lifespan,
                  docs_url=None, redoc_url=None)
    app.state.settings = settings
    install_error_handlers(app)
    _add_middleware(app, settings)
    for router in _ROUTERS:
        app.include_router(router)
    declare_error_answers(app)
    serve_document(app, settings)
    serve_docs_pages(app)
    return app


# Included in this order, which is the order of the OpenAPI document's paths.
_ROUTERS = (workflows.router, convert.router, events.router, files.router, health.router,
            errors_pages.router, webhooks.router, webhook_endpoints.router, admin.router,
            keys.router, queue.router, metrics.router, models.router)


def _add_middleware(app: FastAPI, settings: Settings) -> None:
    """The last added runs first: the execution log context, then the version headers (so
    that the edge's own refusals carry them too), then the edge limits, which still act
    before any route reads a body (neither of the two outer ones reads it)."""
    app.add_middleware(HttpEdge, limits=EdgeLimits(
        max_body_bytes=settings.max_request_bytes, body_timeout=settings.http_body_timeout,
        trusted_hosts=tuple(settings.trusted_hosts)))
    app.state.response_headers = version_headers(deprecated=settings.api_deprecated,
                                                 sunset=settings.api_sunset)
    app.add_middleware(ApiHeaders, headers=app.state.response_headers)
    app.add_middleware(ExecutionLogContext)


@asynccontextmanager
async def _process_running(app: FastAPI, settings: Settings, *,
                           run_worker: bool) -> AsyncIterator[None]:
    """The process's life: its services opened and its fleet identity checked, then its
    background loops, its embedded worker and the event streams' hub, each stopped in the
    reverse order of its start."""
    async with open_services(settings) as services:
        await check_fleet_identity(services.store, settings)
        app.state.services = services
        async with (_background_running(_background_services(settings, services)),
                    _embedded_worker(settings, services, run_worker=run_worker) as worker):
            app.state.worker = worker
            app.state.stream_hub = StreamHub(services.store, settings.stream_max_per_key)
            async with app.state.stream_hub.running(), services.keys.listening():
                yield


def _background_services(settings: Settings, services: Services) -> list[BackgroundService]:
    """The loops every API process runs, in their start order."""
    loops: list[BackgroundService] = [build_rescuer(services), build_housekeeping(services)]
    if settings.webhook_dispatcher:
        loops.append(_dispatcher(settings, services))
    loops.append(CapacityMonitor(
        services.store, thresholds=settings.capacity_thresholds,
        live_window=settings.live_window(), interval=settings.rescue_interval,
        max_retries=settings.webhook_max_retries))
    loops.append(RetentionCleaner(services.store, services.storage_router,
                                  interval=settings.retention_interval))
    return loops


@asynccontextmanager
async def _background_running(loops: list[BackgroundService]) -> AsyncIterator[None]:
    """Start each loop; at the end stop them, the last started first."""
    async with AsyncExitStack() as stack:
        for loop in loops:
            loop.start()
            stack.push_async_callback(loop.stop)
        yield


@asynccontextmanager
async def _embedded_worker(settings: Settings, services: Services, *,
                           run_worker: bool) -> AsyncIterator[Worker | None]:
    """The worker of a one-process deployment, with its own ComfyUI; None without one."""
    if not run_worker:
        yield None
        return
    worker = build_worker(services, build_engine(settings))
    await worker.start()
    try:
        yield worker
    finally:
        await worker.stop()


def _dispatcher(settings: Settings, services: Services) -> WebhookDispatcher:
    return WebhookDispatcher(services.store, services.storage_router, DispatcherConfig(
        policy=settings.webhook_policy(), base_url=settings.base_url(),
        signed_url_ttl=settings.signed_url_ttl, backoff_seconds=settings.webhook_backoff_seconds,
        timeout=settings.webhook_timeout, prices=settings.prices(),
        concurrency=settings.webhook_concurrency,
        per_destination=settings.webhook_per_destination, per_key=settings.webhook_per_key,
        reply_max_bytes=settings.outbound_reply_max_bytes))
