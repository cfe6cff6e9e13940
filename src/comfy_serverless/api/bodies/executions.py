"""Bodies of submit, status and cancel (spec §1.1 and §1.2), as executions/bodies.py builds them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "Accepted",
    "Cancelled",
    "ExecutionMetrics",
    "ExecutionState",
    "ExecutionStatus",
    "LogEntry",
    "PartialResults",
    "WaitingFor",
]

ExecutionState = Literal["queued", "processing", "completed", "failed", "cancelled"]

_EXECUTION_ID = "exec_7f9e8d2c4a1b"


def _examples(*examples: dict[str, Any]) -> ConfigDict:
    return ConfigDict(json_schema_extra={"examples": list(examples)})


class Accepted(BaseModel):
    """202 from `POST /v1/workflows/execute`. An idempotent replay answers the same fields,
    with the execution's status now (`accepted` while it is queued)."""

    model_config = _examples({
        "status": "accepted", "execution_id": _EXECUTION_ID, "queue_position": 3,
        "estimated_duration": 45, "estimated_start_time": "2024-08-31T10:15:30Z",
        "estimated_completion_time": "2024-08-31T10:16:15Z",
        "webhook_url": "https://api.client.com/comfyui/callback",
        "status_url": f"/v1/workflows/{_EXECUTION_ID}/status",
        "cancel_url": f"/v1/workflows/{_EXECUTION_ID}/cancel",
    })

    status: Literal["accepted", "processing", "completed", "failed", "cancelled"] = Field(
        description="`accepted` for a new submission; a replay shows the status now")
    execution_id: str
    queue_position: int = Field(description="0 once it runs")
    estimated_duration: float | None = Field(description="Seconds; null when unknown")
    estimated_start_time: str | None
    estimated_completion_time: str | None
    webhook_url: str | None
    status_url: str
    cancel_url: str
    warnings: list[str] = Field(default_factory=list,
                                description="Present when the workflow raised warnings")


class LogEntry(BaseModel):
    """One entry of an execution's log."""

    timestamp: str | None
    event: str
    node_id: str | None
    message: str
    details: dict[str, Any] | None = Field(default=None,
                                           description="Present when the entry has details")


class ExecutionMetrics(BaseModel):
    total_nodes: int
    completed_nodes: int
    gpu_utilization: float | None = Field(description="Null on a CPU worker")
    memory_efficiency: float | None


class WaitingFor(BaseModel):
    """Why a queued execution cannot run now: the fleet as it is has no worker for it."""

    model_config = _examples({
        "code": "NO_WORKER_WITH_ENVIRONMENT",
        "message": "No live worker has environment 'sdxl-tools'; it stays queued until one "
                   "does",
        "environment": "sdxl-tools", "live_workers": 3,
    })

    code: Literal["NO_WORKER_WITH_ENVIRONMENT", "NO_WORKER_WITH_GPU_TYPE"] = Field(
        description="NO_WORKER_WITH_ENVIRONMENT: no live worker runs the environment it "
                    "asked for; NO_WORKER_WITH_GPU_TYPE: no live worker (with that "
                    "environment, if it asked for one) may run its key's tier's GPU types")
    message: str
    live_workers: int = Field(description="How many workers are live (with its environment, "
                                          "for NO_WORKER_WITH_GPU_TYPE)")
    environment: str | None = Field(default=None, description="The environment it asked for, "
                                                              "for NO_WORKER_WITH_ENVIRONMENT")
    gpu_types: list[str] | None = Field(default=None, description="The GPU types its key's "
                                        "tier allows, for NO_WORKER_WITH_GPU_TYPE")


class ExecutionStatus(BaseModel):
    """200 from `GET /v1/workflows/{execution_id}/status`."""

    model_config = _examples({
        "execution_id": _EXECUTION_ID, "status": "processing", "client_id": None,
        "progress": 0.65, "current_node": "KSampler", "current_node_id": "3",
        "current_step": 13, "total_steps": 20, "submitted_at": "2024-08-31T10:14:30Z",
        "started_at": "2024-08-31T10:15:30Z", "completed_at": None,
        "estimated_completion": "2024-08-31T10:16:45Z", "estimated_remaining": 75,
        "attempt": 1,
        "resource_allocation": {"gpu_id": "gpu-node-7", "gpu_memory_used": "14.2GB",
                                "gpu_memory_total": "24GB", "container_id": "container-abc123"},
        "execution_log": [
            {"timestamp": "2024-08-31T10:15:30Z", "event": "execution_started",
             "node_id": None, "message": "Workflow execution initiated"},
            {"timestamp": "2024-08-31T10:15:35Z", "event": "model_loaded", "node_id": "1",
             "message": "SDXL model loaded successfully",
             "details": {"memory_used": "6.2GB"}},
        ],
        "metrics": {"total_nodes": 8, "completed_nodes": 5, "gpu_utilization": 0.89,
                    "memory_efficiency": 0.78},
    })

    execution_id: str
    status: ExecutionState
    client_id: str | None = Field(description="The submit's X-Client-ID")
    progress: float = Field(ge=0, le=1)
    current_node: str | None
    current_node_id: str | None
    current_step: int | None
    total_steps: int | None
    submitted_at: str | None
    started_at: str | None
    completed_at: str | None
    estimated_completion: str | None
    estimated_remaining: float | None
    attempt: int
    resource_allocation: dict[str, Any] | None
    execution_log: list[LogEntry]
    metrics: ExecutionMetrics
    queue_position: int | None = Field(default=None, description="Present while queued")
    waiting_for: WaitingFor | None = Field(
        default=None, description="Present while queued when no live worker can run it: "
                                  "why it waits (it stays queued; nothing fails it)")
    error: dict[str, Any] | None = Field(
        default=None, description="Present when it failed: the spec's error fields")


class PartialResults(BaseModel):
    available: bool
    completed_nodes: int
    total_nodes: int


class Cancelled(BaseModel):
    """200 from `DELETE /v1/workflows/{execution_id}/cancel`."""

    model_config = _examples({
        "status": "cancelled", "execution_id": _EXECUTION_ID,
        "cancelled_at": "2024-08-31T10:16:15Z", "reason": "user_requested",
        "refund_eligible": True,
        "partial_results": {"available": False, "completed_nodes": 3, "total_nodes": 8},
    })

    status: Literal["cancelled"]
    execution_id: str
    cancelled_at: str | None
    reason: str | None
    refund_eligible: bool
    partial_results: PartialResults
