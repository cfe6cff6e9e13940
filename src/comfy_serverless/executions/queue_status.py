"""The spec's queue status (§1.5), computed from the store and the workers' heartbeats."""

from __future__ import annotations

import time
from typing import Any

from comfy_serverless.engine.comfyui.stats import device_memory, gigabytes
from comfy_serverless.executions.bodies import rounded_seconds
from comfy_serverless.store.records import WorkerState
from comfy_serverless.store.store import Store

__all__ = ["WINDOW_SECONDS", "fleet_memory", "queue_status"]

# Averages of wait and processing time cover the executions of the last hour.
WINDOW_SECONDS = 3600.0


def fleet_memory(workers: list[WorkerState]) -> tuple[float, float]:
    """(total, free) bytes over the workers' first devices."""
    memory = [device_memory(worker.system_stats) for worker in workers]
    return sum(total for total, _ in memory), sum(free for _, free in memory)


async def queue_status(store: Store, *, live_window: float) -> dict[str, Any]:
    now = time.time()
    totals = await store.metrics.queue_totals()
    wait, processing = await store.metrics.recent_averages(now - WINDOW_SECONDS)
    workers = await store.workers.live_workers(now - live_window)
    idle = [worker for worker in workers if worker.state == "idle"]
    total_memory, free_memory = fleet_memory(workers)
    return {
        "queue_status": {
            "total_queued": totals.get("queued", 0),
            "total_processing": totals.get("processing", 0),
            "avg_wait_time": rounded_seconds(wait),
            "avg_processing_time": rounded_seconds(processing),
            "window_seconds": WINDOW_SECONDS,
        },
        "system_capacity": {
            "total_gpu_nodes": len(workers),
            "available_gpu_nodes": len(idle),
            "total_gpu_memory": gigabytes(total_memory),
            "available_gpu_memory": gigabytes(free_memory),
            "utilization": round(1 - len(idle) / len(workers), 3) if workers else 0.0,
        },
        "queue_breakdown": [
            {"priority": priority, "count": count, "avg_wait_time": round(avg_wait, 3)}
            for priority, count, avg_wait in await store.metrics.queue_breakdown(now)
        ],
    }
