"""The FastAPI application: routes, error handlers, and the process's lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

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
        async with open_services(settings) as services:
            await check_fleet_identity(services.store, settings)
            app.state.services = services
            rescuer = build_rescuer(services)
            rescuer.start()
            housekeeping = build_housekeeping(services)
            housekeeping.start()
            dispatcher = _dispatcher(settings, services) if settings.webhook_dispatcher else None
            if dispatcher is not None:
                dispatcher.start()
            capacity = CapacityMonitor(
                services.store, thresholds=settings.capacity_thresholds,
                live_window=settings.live_window(), interval=settings.rescue_interval,
                max_retries=settings.webhook_max_retries)
            capacity.start()
            cleaner = RetentionCleaner(services.store, services.storages,
                                       interval=settings.retention_interval)
            cleaner.start()
            worker: Worker | None = None
            if run_worker:
                worker = build_worker(services, build_engine(settings))
                await worker.start()
            app.state.worker = worker
            app.state.stream_hub = StreamHub(services.store, settings.stream_max_per_key)
            try:
                async with app.state.stream_hub.running(), services.keys.listening():
                    yield
            finally:
                if worker is not None:
                    await worker.stop()
                await cleaner.stop()
                await capacity.stop()
                if dispatcher is not None:
                    await dispatcher.stop()
                await housekeeping.stop()
                await rescuer.stop()

    app = FastAPI(title=settings.api_title, version=API_VERSION,
                  description=settings.api_description, lifespan=lifespan,
                  docs_url=None, redoc_url=None)
    app.state.settings = settings
    install_error_handlers(app)
    app.add_middleware(HttpEdge, limits=EdgeLimits(
        max_body_bytes=settings.max_request_bytes, body_timeout=settings.http_body_timeout,
        trusted_hosts=tuple(settings.trusted_hosts)))
    app.state.response_headers = version_headers(deprecated=settings.api_deprecated,
                                                 sunset=settings.api_sunset)
    app.add_middleware(ApiHeaders, headers=app.state.response_headers)
    app.add_middleware(ExecutionLogContext)
    app.include_router(workflows.router)
    app.include_router(convert.router)
    app.include_router(events.router)
    app.include_router(files.router)
    app.include_router(health.router)
    app.include_router(errors_pages.router)
    app.include_router(webhooks.router)
    app.include_router(webhook_endpoints.router)
    app.include_router(admin.router)
    app.include_router(keys.router)
    app.include_router(queue.router)
    app.include_router(metrics.router)
    app.include_router(models.router)
    declare_error_answers(app)
    serve_document(app, settings)
    serve_docs_pages(app)
    return app


def _dispatcher(settings: Settings, services: Services) -> WebhookDispatcher:
    return WebhookDispatcher(services.store, services.storages, DispatcherConfig(
        policy=settings.webhook_policy(), base_url=settings.base_url(),
        signed_url_ttl=settings.signed_url_ttl, backoff_seconds=settings.webhook_backoff_seconds,
        timeout=settings.webhook_timeout, prices=settings.prices(),
        concurrency=settings.webhook_concurrency,
        per_destination=settings.webhook_per_destination, per_key=settings.webhook_per_key,
        reply_max_bytes=settings.outbound_reply_max_bytes))
