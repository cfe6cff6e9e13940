"""The /metrics families that deploy/observability's alerts and dashboard need beyond the
queue depth and worker counts: queue age by priority, failures by error code, lease rescues."""

from __future__ import annotations

from prometheus_client.core import GaugeMetricFamily, Metric

from comfy_serverless.store.store import Store

__all__ = ["fleet_gauges"]


def _labelled(name: str, documentation: str, label: str,
              values: dict[str, float] | dict[str, int]) -> Metric:
    family = GaugeMetricFamily(name, documentation, labels=[label])
    for key, value in sorted(values.items()):
        family.add_metric([key], float(value))
    return family


async def fleet_gauges(store: Store, now: float) -> list[Metric]:
    figures = await store.fleet.figures(now)
    return [
        _labelled("comfy_serverless_queue_oldest_age_seconds",
                  "Age of the oldest queued execution, by priority", "priority",
                  figures.oldest_queued_age),
        _labelled("comfy_serverless_failures", "Failed executions by error code", "error_code",
                  figures.failures_by_code),
        GaugeMetricFamily("comfy_serverless_lease_rescues",
                          "Leases taken back from lost workers (execution_rescued events)",
                          value=float(figures.lease_rescues)),
    ]
