"""System events for registered endpoints: `model.updated`, `system.capacity`,
`system.maintenance`. Each is fanned out to every active endpoint whose filter takes it."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from comfy_serverless.background import BackgroundService
from comfy_serverless.loader_inputs import is_placed_name
from comfy_serverless.store.store import Store
from comfy_serverless.validation.catalog import NodeCatalog

__all__ = ["SYSTEM_EVENTS", "CapacityMonitor", "announce_maintenance", "model_changes"]

SYSTEM_EVENTS = ("system.maintenance", "system.capacity", "model.updated")


def _model_files(object_info: Mapping[str, Any]) -> set[str]:
    """The catalog's model files, without those fetched by source (placed names): the event
    goes to every key's endpoints, and a fetched model is seen only by the tiers that could
    fetch it (docs/reference/security.md)."""
    catalog = NodeCatalog.from_object_info(object_info)
    return {str(option) for node in catalog.nodes.values() for spec in node.inputs.values()
            if spec.lists_model_files for option in spec.options or ()
            if not is_placed_name(option)}


def model_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, list[str]]:
    """The model files a worker gained and lost between two of its catalogs."""
    old, new = _model_files(before), _model_files(after)
    return {"added": sorted(new - old), "removed": sorted(old - new)}


async def announce_maintenance(store: Store, message: str, starts_at: str | None,
                               ends_at: str | None, max_retries: int) -> int:
    data = {"message": message, "starts_at": starts_at, "ends_at": ends_at}
    return await store.webhooks.broadcast("system.maintenance", data, max_retries)


def _band(fraction: float, thresholds: Sequence[float]) -> str:
    """Which side of each threshold available capacity is on, e.g. `1` = above one."""
    return str(sum(fraction > threshold for threshold in sorted(thresholds)))


class CapacityMonitor(BackgroundService):
    """Fires `system.capacity` when the share of idle workers crosses a threshold. The
    current band is kept in the store and changed by compare-and-set, so with many API
    replicas exactly one announces each crossing."""

    name = "capacity-monitor"
    _KEY = "capacity_band"

    def __init__(self, store: Store, *, thresholds: Sequence[float], live_window: float,
                 interval: float, max_retries: int) -> None:
        super().__init__(interval)
        self._store = store
        self._thresholds = tuple(thresholds)
        self._live_window = live_window
        self._max_retries = max_retries

    async def run_once(self) -> bool:
        workers = await self._store.workers.live_workers(time.time() - self._live_window)
        live, idle = len(workers), sum(worker.state == "idle" for worker in workers)
        fraction = idle / live if live else 0.0
        band = _band(fraction, self._thresholds)
        previous = await self._store.workers.state(self._KEY)
        if previous is None or previous == band:
            return False
        if not await self._store.workers.swap_state(self._KEY, previous, band):
            return False
        if previous == "unknown":
            return False
        await self._store.webhooks.broadcast("system.capacity", {
            "available_fraction": round(fraction, 3), "live_workers": live,
            "idle_workers": idle, "band": int(band), "previous_band": int(previous),
            "thresholds": list(self._thresholds)}, self._max_retries)
        return True
