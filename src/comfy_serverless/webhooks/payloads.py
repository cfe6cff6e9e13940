"""The spec's webhook payload (§4.2) for each event type, from the execution's record."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from comfy_serverless.costs import Prices, cost_breakdown
from comfy_serverless.store.records import ExecutionRecord, OutputRecord, WebhookEvent
from comfy_serverless.timefmt import utc_iso

__all__ = ["event_body", "event_data", "linked_outputs"]


def _completed(execution: ExecutionRecord, outputs: list[OutputRecord],
               url_for: Callable[[OutputRecord], str], prices: Prices) -> dict[str, Any]:
    started = execution.started_at or execution.submitted_at
    finished = execution.finished_at or started
    final = [output for output in outputs if not output.intermediate]
    cost = cost_breakdown(execution, outputs, prices)
    return {
        "status": "completed",
        "execution_time": round(finished - started, 3),
        "results": {"output_count": len(final), "output_urls": [url_for(o) for o in final]},
        "metrics": {"gpu_time": execution.gpu_time,
                    "queue_time": round(started - execution.submitted_at, 3),
                    "cost": cost["total"], "cost_breakdown": cost},
    }


def _progress(event: WebhookEvent, outputs: list[OutputRecord],
              url_for: Callable[[OutputRecord], str]) -> dict[str, Any]:
    data = {"status": "processing", **(event.data or {})}
    preview_key = data.pop("preview", None)
    preview = next((o for o in outputs if o.storage_key == preview_key), None)
    if preview is not None:
        data["preview_url"] = url_for(preview)
    return data


def linked_outputs(event: WebhookEvent, outputs: list[OutputRecord]) -> list[OutputRecord]:
    """The outputs whose URLs `event_data` puts in this event's payload (to sign only those)."""
    match event.event_type:
        case "execution.completed":
            return [output for output in outputs if not output.intermediate]
        case "execution.progress":
            preview_key = (event.data or {}).get("preview")
            return [output for output in outputs if output.storage_key == preview_key]
    return []


def event_data(event: WebhookEvent, execution: ExecutionRecord, outputs: list[OutputRecord],
               url_for: Callable[[OutputRecord], str], prices: Prices | None = None
               ) -> dict[str, Any]:
    match event.event_type:
        case "execution.started":
            return {"status": "processing", "attempt": execution.attempt,
                    "started_at": utc_iso(execution.started_at),
                    "worker_id": execution.worker_id}
        case "execution.progress":
            return _progress(event, outputs, url_for)
        case "execution.completed":
            return _completed(execution, outputs, url_for, prices or Prices())
        case "execution.failed":
            return {"status": "failed", "error": execution.error}
        case "execution.cancelled":
            return {"status": "cancelled", "reason": execution.cancel_reason,
                    "cancelled_at": utc_iso(execution.finished_at),
                    "completed_nodes": execution.completed_nodes,
                    "total_nodes": execution.total_nodes}
    return dict(event.data or {})


def event_body(event: WebhookEvent, data: Any, attempt: int) -> dict[str, Any]:
    return {
        "event_type": event.event_type,
        "event_id": event.id,
        "timestamp": utc_iso(event.created_at),
        "execution_id": event.execution_id,
        "data": data,
        "delivery_attempt": attempt,
        "max_retries": event.max_retries,
    }
