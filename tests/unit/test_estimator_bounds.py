"""The estimator keeps one cached average per workflow signature: bounded, however many
distinct workflow shapes a long-lived API process sees."""

from __future__ import annotations

from pathlib import Path

from comfy_serverless.executions.estimates import Estimator
from comfy_serverless.store.store import Store


async def test_averages_of_distinct_workflow_shapes_stay_within_the_bound(
    tmp_path: Path,
) -> None:
    store = await Store.open(f"sqlite:///{tmp_path / 'e.db'}")
    await store.migrate()
    estimator = Estimator(store, max_signatures=32)
    for shape in range(500):
        assert await estimator.duration(f"signature-{shape}") is None
        assert estimator.cached_signatures <= 32
    assert estimator.cached_signatures >= 2  # the newest shape and "any workflow" stay
    await store.close()
