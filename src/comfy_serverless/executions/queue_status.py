"""The spec's queue status (§1.5), computed from the store and the workers' heartbeats."""

from __future__ import annotations

import time
from typing import Any

from comfy_serverless.store.records import WorkerState
from comfy_serverless.store.store import Store

__all__ = ["WINDOW_SECONDS", "queue_status"]

# Averages of wait and processing time cover the executions of the last hour.
WINDOW_SECONDS = 3600.0


def _gigabytes(value: float) -> str:
    return f"{value / 1024**3:.1f}GB"


def _memory(worker: WorkerState) -> tuple[float, float]:
    devices = (worker.system_stats or {}).get("devices") or [{}]
    device = devices[0] if isinstance(devices[0], dict) else {}
    return float(device.get("vram_total") or 0), float(device.get("vram_free") or 0)


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


async def queue_status(store: Store, *, live_window: float) -> dict[str, Any]:
    now = time.time()
    totals = await store.queue_totals()
    wait, processing = await store.recent_averages(now - WINDOW_SECONDS)
    workers = await store.live_workers(now - live_window)
    idle = [worker for worker in workers if worker.state == "idle"]
    memory = [_memory(worker) for worker in workers]
    return {
        "queue_status": {
            "total_queued": totals.get("queued", 0),
            "total_processing": totals.get("processing", 0),
            "avg_wait_time": _rounded(wait),
            "avg_processing_time": _rounded(processing),
            "window_seconds": WINDOW_SECONDS,
        },
        "system_capacity": {
            "total_gpu_nodes": len(workers),
            "available_gpu_nodes": len(idle),
            "total_gpu_memory": _gigabytes(sum(total for total, _ in memory)),
            "available_gpu_memory": _gigabytes(sum(free for _, free in memory)),
            "utilization": round(1 - len(idle) / len(workers), 3) if workers else 0.0,
        },
        "queue_breakdown": [
            {"priority": priority, "count": count, "avg_wait_time": round(avg_wait, 3)}
            for priority, count, avg_wait in await store.queue_breakdown(now)
        ],
    }
