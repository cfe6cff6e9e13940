"""The API's bodies as pydantic models (spec §1). They accept fields they do not name, so
a newer service never breaks an older client."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

__all__ = [
    "Accepted", "Cancelled", "ErrorBody", "ExecutionStatus", "FileInfo", "LogEntry", "Output",
    "OutputStorage", "Progress", "Results", "ResultsBody", "StreamEvent",
]

Status = Literal["queued", "processing", "completed", "failed", "cancelled"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="allow")


class Accepted(_Body):
    """202 from POST /v1/workflows/execute."""

    status: str
    execution_id: str
    queue_position: int | None = None
    estimated_duration: float | None = None
    estimated_start_time: str | None = None
    estimated_completion_time: str | None = None
    webhook_url: str | None = None
    status_url: str
    cancel_url: str


class LogEntry(_Body):
    timestamp: str | None = None
    event: str
    node_id: str | None = None
    message: str
    details: dict[str, Any] | None = None


class ExecutionStatus(_Body):
    """200 from GET …/status."""

    execution_id: str
    status: Status
    progress: float
    current_node: str | None = None
    current_node_id: str | None = None
    current_step: int | None = None
    total_steps: int | None = None
    submitted_at: str | None = None
    started_at: str | None = None
    completed_at: str | None = None
    estimated_completion: str | None = None
    estimated_remaining: float | None = None
    execution_log: list[LogEntry] = []
    metrics: dict[str, Any] | None = None
    # Present while queued when no live worker can run it (its environment, its GPU types).
    waiting_for: dict[str, Any] | None = None


class FileInfo(_Body):
    filename: str
    size_bytes: int
    dimensions: str | None = None
    format: str | None = None
    content_type: str | None = None


class OutputStorage(_Body):
    provider: str
    bucket: str | None = None
    key: str
    url: str
    expires_at: str | None = None


class Output(_Body):
    node_id: str
    output_type: str
    file_info: FileInfo
    storage: OutputStorage


class ResultsBody(_Body):
    outputs: list[Output] = []
    intermediate_outputs: list[Output] = []
    metadata: dict[str, Any] | None = None


class Results(_Body):
    """200 from GET …/results (and from a submit with `Prefer: wait=N` that ended in time)."""

    execution_id: str
    status: Status
    completed_at: str | None = None
    execution_time: float | None = None
    results: ResultsBody
    execution_metrics: dict[str, Any] | None = None


class Cancelled(_Body):
    """200 from DELETE …/cancel."""

    status: str
    execution_id: str
    cancelled_at: str | None = None
    reason: str | None = None


class ErrorBody(_Body):
    """The spec's error shape (§3.2), for every error of every route."""

    status: Literal["error"] = "error"
    error_code: str
    message: str
    details: dict[str, Any] = {}
    retry_info: dict[str, Any] | None = None


class Progress(_Body):
    """The data of a `progress` event of GET …/events."""

    execution_id: str
    progress: float
    current_node: str | None = None
    current_node_id: str | None = None
    current_step: int | None = None
    total_steps: int | None = None
    completed_nodes: int = 0
    total_nodes: int = 0


class StreamEvent(BaseModel):
    """One Server-Sent Event of GET …/events: `status`, `progress`, `log`, `preview`,
    `output` or `end` (docs/how-to/stream.md)."""

    id: int
    event: str
    data: dict[str, Any]
