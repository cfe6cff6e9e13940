"""The /metrics histograms, counted by the database, render exactly as the computation they
replaced (every completed execution read, then counted in Python) on the same rows."""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from comfy_serverless.api.routes.metrics import _histogram
from comfy_serverless.store.metrics import DURATION_BOUNDS as _BUCKETS
from comfy_serverless.store.store import Store
from workloads.rows import add_execution, add_key

_NAME, _HELP = "comfy_serverless_queue_wait_seconds", "Submit to start, completed jobs"
# Durations in 1/64 s steps, so that every difference and sum is exact in binary floating
# point and the two computations may only differ by their counting; bounds included.
_ON_BOUNDS = (0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 3600.0)


class _One(Collector):
    def __init__(self, metric: Metric) -> None:
        self._metric = metric

    def collect(self) -> Iterable[Metric]:
        return [self._metric]


def _rendered(metric: Metric) -> bytes:
    registry = CollectorRegistry()
    registry.register(_One(metric))
    return generate_latest(registry)


def _old_histogram(values: Sequence[float]) -> Metric:
    """The computation /metrics made before the database counted the buckets."""
    buckets = [(str(bound), float(sum(v <= bound for v in values))) for bound in _BUCKETS]
    buckets.append(("+Inf", float(len(values))))
    return HistogramMetricFamily(_NAME, _HELP, buckets=buckets, sum_value=sum(values))


async def _completed(store: Store, count: int) -> None:
    """`count` completed executions, some on a bucket's bound, some past the last."""
    key, rng, base = await add_key(store), random.Random(13), 1_700_000_000.0
    for index in range(count):
        wait = (_ON_BOUNDS[index % len(_ON_BOUNDS)] if index % 5 == 0
                else rng.randrange(0, 64 * 5000) / 64)
        work = rng.randrange(0, 64 * 200) / 64
        execution_id = await add_execution(store, key, submitted_at=base + index)
        await store.connector.execute(
            "UPDATE executions SET status = 'completed', started_at = :started, "
            "finished_at = :finished WHERE id = :id",
            {"id": execution_id, "started": base + index + wait,
             "finished": base + index + wait + work})


async def _old_values(store: Store) -> tuple[list[float], list[float]]:
    rows = await store.connector.fetch_all(
        "SELECT started_at - submitted_at AS wait, finished_at - started_at AS work "
        "FROM executions WHERE status = 'completed'")
    return [float(row["wait"]) for row in rows], [float(row["work"]) for row in rows]


async def test_the_database_counted_histograms_render_as_the_old_ones(store: Store) -> None:
    await _completed(store, 300)
    await add_execution(store, await add_key(store))  # a queued execution counts in neither
    waits, works = await store.metrics.duration_histograms()
    old_waits, old_works = await _old_values(store)
    assert waits.count == works.count == 300
    assert _rendered(_histogram(_NAME, _HELP, waits)) == _rendered(_old_histogram(old_waits))
    assert _rendered(_histogram(_NAME, _HELP, works)) == _rendered(_old_histogram(old_works))


async def test_no_completed_execution_renders_as_before(store: Store) -> None:
    waits, _ = await store.metrics.duration_histograms()
    assert waits.count == 0
    assert [count for _, count in waits.buckets] == [0] * len(_BUCKETS)
    assert _rendered(_histogram(_NAME, _HELP, waits)) == _rendered(_old_histogram([]))


async def test_the_tallied_bounds_are_the_documented_ones(store: Store) -> None:
    waits, works = await store.metrics.duration_histograms()
    assert tuple(bound for bound, _ in waits.buckets) == _BUCKETS
    assert tuple(bound for bound, _ in works.buckets) == _BUCKETS
