"""The spec's response bodies (execute, status, cancel, results), built from store records:
the routes, the event stream and the queue summary answer with these."""

from __future__ import annotations

import base64
import time
from typing import Any

from comfy_serverless.executions.estimates import Estimate
from comfy_serverless.storage.base import OutputStorage, download_url, location_of
from comfy_serverless.store.records import ExecutionRecord, LogEntry, NewExecution, OutputRecord
from comfy_serverless.timefmt import utc_iso

__all__ = [
    "accepted_body",
    "cancelled_body",
    "output_body",
    "replay_body",
    "results_body",
    "rounded_seconds",
    "status_body",
]


def _links(execution_id: str) -> dict[str, str]:
    return {
        "status_url": f"/v1/workflows/{execution_id}/status",
        "cancel_url": f"/v1/workflows/{execution_id}/cancel",
    }


def rounded_seconds(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def accepted_body(execution: NewExecution | ExecutionRecord, estimate: Estimate) -> dict[str, Any]:
    return {
        "status": "accepted",
        **_accepted_fields(execution, estimate),
    }


def replay_body(execution: ExecutionRecord, estimate: Estimate) -> dict[str, Any]:
    """An idempotent replay's answer: the first answer's fields, with the execution's status
    now ("accepted" while it is still queued). A finished execution's estimated_duration is
    what it took (null if it never ran), so every replay of it answers the same."""
    body = _accepted_fields(execution, estimate)
    if execution.is_finished:
        ran = (execution.finished_at - execution.started_at
               if execution.started_at is not None and execution.finished_at is not None
               else None)
        body["estimated_duration"] = rounded_seconds(ran)
    status = "accepted" if execution.status == "queued" else execution.status
    return {"status": status, **body}


def _accepted_fields(execution: NewExecution | ExecutionRecord, estimate: Estimate
                     ) -> dict[str, Any]:
    return {
        "execution_id": execution.id,
        "queue_position": estimate.queue_position,
        "estimated_duration": rounded_seconds(estimate.duration),
        "estimated_start_time": utc_iso(estimate.start_time),
        "estimated_completion_time": utc_iso(estimate.completion_time),
        "webhook_url": execution.webhook_url,
        **_links(execution.id),
    }


def _log_entry_body(entry: LogEntry) -> dict[str, Any]:
    body: dict[str, Any] = {
        "timestamp": utc_iso(entry.at),
        "event": entry.event,
        "node_id": entry.node_id,
        "message": entry.message,
    }
    if entry.details:
        body["details"] = entry.details
    return body


def _remaining(execution: ExecutionRecord, estimate: Estimate) -> float | None:
    if execution.is_finished:
        return 0.0
    if estimate.completion_time is None:
        return None
    return rounded_seconds(max(0.0, estimate.completion_time - time.time()))


def status_body(
    execution: ExecutionRecord, log: list[LogEntry], estimate: Estimate,
    waiting_for: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """`waiting_for` (executions/waiting.py): why a queued execution cannot run now."""
    body: dict[str, Any] = {
        "execution_id": execution.id,
        "status": execution.status,
        "client_id": execution.client_id,
        "progress": execution.progress,
        "current_node": execution.current_node,
        "current_node_id": execution.current_node_id,
        "current_step": execution.current_step,
        "total_steps": execution.total_steps,
        "submitted_at": utc_iso(execution.submitted_at),
        "started_at": utc_iso(execution.started_at),
        "completed_at": utc_iso(execution.finished_at),
        "estimated_completion": utc_iso(
            execution.finished_at if execution.is_finished else estimate.completion_time),
        "estimated_remaining": _remaining(execution, estimate),
        "attempt": execution.attempt,
        "resource_allocation": execution.resource_allocation,
        "execution_log": [_log_entry_body(entry) for entry in log],
        "metrics": {
            "total_nodes": execution.total_nodes,
            "completed_nodes": execution.completed_nodes,
            # Sampled by the worker on its GPU; null on a CPU worker and before the first sample.
            "gpu_utilization": (execution.engine_metrics or {}).get("gpu_utilization"),
            "memory_efficiency": (execution.engine_metrics or {}).get("memory_efficiency"),
        },
    }
    if execution.status == "queued":
        body["queue_position"] = estimate.queue_position
        if waiting_for is not None:
            body["waiting_for"] = waiting_for
    if execution.error is not None:
        body["error"] = execution.error
    return body


def cancelled_body(execution: ExecutionRecord) -> dict[str, Any]:
    return {
        "status": "cancelled",
        "execution_id": execution.id,
        "cancelled_at": utc_iso(execution.finished_at),
        "reason": execution.cancel_reason,
        "refund_eligible": True,
        "partial_results": {
            "available": False,
            "completed_nodes": execution.completed_nodes,
            "total_nodes": execution.total_nodes,
        },
    }


async def output_body(
    output: OutputRecord, storage: OutputStorage, *, base_url: str, expires: int,
    inline: bool,
) -> dict[str, Any]:
    url = await download_url(storage, output, base_url=base_url, expires=expires)
    dimensions = f"{output.width}x{output.height}" if output.width and output.height else None
    body: dict[str, Any] = {
        "node_id": output.node_id,
        "output_type": output.output_type,
        "file_info": {
            "filename": output.filename,
            "size_bytes": output.size_bytes,
            "dimensions": dimensions,
            "format": output.format,
            "content_type": output.content_type,
        },
        "storage": {
            "provider": output.storage_provider,
            "bucket": output.storage_bucket,
            "key": output.storage_key,
            "url": url,
            "expires_at": None if output.public_access else utc_iso(expires),
            "public_access": output.public_access,
            "retention_expires_at": utc_iso(output.expires_at),
        },
    }
    if inline:
        data = await storage.read_bytes(location_of(output))
        body["data"] = base64.b64encode(data).decode()
        body["encoding"] = "base64"
    return body


def _model_used(workflow: dict[str, Any]) -> str | None:
    for node in workflow.values():
        name = node.get("inputs", {}).get("ckpt_name")
        if isinstance(name, str):
            return name
    return None


def _seed(workflow: dict[str, Any]) -> int | None:
    for node in workflow.values():
        inputs = node.get("inputs", {})
        for name in ("seed", "noise_seed"):
            if isinstance(inputs.get(name), int):
                return int(inputs[name])
    return None


def results_body(
    execution: ExecutionRecord, outputs: list[dict[str, Any]],
    intermediate: list[dict[str, Any]], *, include_metadata: bool,
    cost_breakdown: dict[str, Any] | None = None,
) -> dict[str, Any]:
    started = execution.started_at or execution.submitted_at
    finished = execution.finished_at or time.time()
    results: dict[str, Any] = {"outputs": outputs, "intermediate_outputs": intermediate}
    if include_metadata:
        results["metadata"] = {
            "total_outputs": len(outputs),
            "total_size_bytes": sum(o["file_info"]["size_bytes"] for o in outputs),
            "generation_seed": _seed(execution.workflow),
            "model_used": _model_used(execution.workflow),
            "workflow_metadata": execution.options.metadata,
            "attempts": execution.attempt,
        }
    return {
        "execution_id": execution.id,
        "status": execution.status,
        "completed_at": utc_iso(execution.finished_at),
        "execution_time": rounded_seconds(finished - started),
        "results": results,
        "execution_metrics": {
            "total_time": rounded_seconds(finished - execution.submitted_at),
            "queue_time": rounded_seconds(started - execution.submitted_at),
            "processing_time": rounded_seconds(finished - started),
            "gpu_time": rounded_seconds(execution.gpu_time),
            "cost_breakdown": cost_breakdown,
        },
    }
