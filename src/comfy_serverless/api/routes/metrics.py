"""GET /metrics in Prometheus' text format, computed from the store at scrape time, so every
API replica reports the same fleet-wide figures."""

from __future__ import annotations

import hmac
import ipaddress
import time
from collections.abc import Iterable
from typing import Annotated

from fastapi import APIRouter, Depends, Header
from fastapi.responses import PlainTextResponse, Response
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from comfy_serverless.api.bodies.service import METRICS
from comfy_serverless.api.deps import ServicesDep
from comfy_serverless.api.fleet_gauges import fleet_gauges
from comfy_serverless.api.openapi import METRICS_SECURITY
from comfy_serverless.api.schemas import error_responses
from comfy_serverless.auth.keys import parse_bearer
from comfy_serverless.errors import ApiError, AuthenticationFailed
from comfy_serverless.executions.queue_status import fleet_memory
from comfy_serverless.store.metrics import DurationHistogram

__all__ = ["MetricsDisabled", "is_loopback", "router"]

router = APIRouter(tags=["metrics"])

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _histogram(name: str, documentation: str, counted: DurationHistogram) -> Metric:
    buckets = [(str(bound), float(count)) for bound, count in counted.buckets]
    buckets.append(("+Inf", float(counted.count)))
    return HistogramMetricFamily(name, documentation, buckets=buckets,
                                 sum_value=counted.total)


def _gauge(name: str, documentation: str, label: str | None,
           values: dict[str, int] | dict[str, float] | dict[str, int | float]) -> Metric:
    family = GaugeMetricFamily(name, documentation, labels=[label] if label else None)
    for key, value in sorted(values.items()):
        family.add_metric([key] if label else [], float(value))
    return family


class _Snapshot(Collector):
    def __init__(self, metrics: list[Metric]) -> None:
        self._metrics = metrics

    def collect(self) -> Iterable[Metric]:
        return self._metrics


class MetricsDisabled(ApiError):
    status_code = 403
    error_code = "METRICS_DISABLED"


async def _scraper(services: ServicesDep,
                   authorization: Annotated[str | None, Header()] = None) -> None:
    """Who may scrape: with `metrics_token` set, only its bearer; without one, anyone, but
    only while the service listens on loopback. Bound elsewhere with no token, /metrics is
    refused (403): fleet figures are not for whoever can reach the port."""
    token = services.settings.metrics_token
    if token:
        refused = AuthenticationFailed("GET /metrics needs 'Bearer {metrics_token}'")
        try:
            given = parse_bearer(authorization)
        except AuthenticationFailed:
            raise refused from None
        if not hmac.compare_digest(given.encode("utf-8", "surrogateescape"), token.encode()):
            raise refused
    elif not is_loopback(services.settings.host):
        raise MetricsDisabled(
            "/metrics is off: the service listens beyond loopback and no metrics_token is set",
            {"setting": "metrics_token", "host": services.settings.host})


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@router.get("/metrics", response_class=PlainTextResponse, dependencies=[Depends(_scraper)],
            responses={**METRICS, **error_responses(401, 403, 503)},
            openapi_extra={"security": METRICS_SECURITY})
async def metrics(services: ServicesDep) -> Response:
    store = services.store
    counts = await store.metrics.metric_counts()
    waits, works = await store.metrics.duration_histograms()
    workers = await store.workers.live_workers(time.time() - services.settings.live_window())
    total_memory, free_memory = fleet_memory(workers)
    gathered: list[Metric] = [
        _gauge("comfy_serverless_executions", "Executions by status", "status",
               counts["executions"]),
        _gauge("comfy_serverless_queue_depth", "Queued executions by priority", "priority",
               counts["queue_depth"]),
        _histogram("comfy_serverless_queue_wait_seconds", "Submit to start, completed jobs",
                   waits),
        _histogram("comfy_serverless_processing_seconds", "Start to end, completed jobs",
                   works),
        _gauge("comfy_serverless_workers", "Live workers by state", "state",
               {state: sum(w.state == state for w in workers)
                for state in ("idle", "busy", "warming")}),
        _gauge("comfy_serverless_gpu_memory_bytes", "GPU memory of live workers", "kind",
               {"total": total_memory, "available": free_memory}),
        _gauge("comfy_serverless_webhook_delivery_attempts", "Webhook delivery attempts",
               "outcome", counts["webhook_deliveries"]),
        _gauge("comfy_serverless_model_loads", "Model loads seen in execution logs", None,
               {"": counts["model_loads"]["all"]}),
    ]
    gathered += await fleet_gauges(store, time.time())
    registry = CollectorRegistry()
    registry.register(_Snapshot(gathered))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE)

