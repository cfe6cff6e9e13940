"""What went wrong in an execution, as stored and as the spec's error body shows it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from comfy_serverless.engine.comfyui.messages import ExecutionError
from comfy_serverless.errors import EnginePromptRejected
from comfy_serverless.store.records import ExecutionRecord

__all__ = ["Failure", "engine_error_failure", "rejection_failure"]

_OOM_MARKERS = ("out of memory", "outofmemoryerror")


@dataclass(frozen=True)
class Failure:
    error_type: str
    message: str
    retryable: bool
    node_id: str | None = None
    node_type: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def body(
        self, execution: ExecutionRecord, remaining_retries: int, retry_delay: float | None
    ) -> dict[str, Any]:
        """The `details` and `retry_info` that the API shows for this failure."""
        return {
            "error_code": "WORKFLOW_EXECUTION_FAILED",
            "message": self.message,
            "details": {
                "execution_id": execution.id,
                "failed_node": self.node_id,
                "node_type": self.node_type,
                "error_type": self.error_type,
                **self.extra,
            },
            "retry_info": {
                "retryable": self.retryable,
                "retry_delay": retry_delay,
                "max_retries": execution.max_attempts - 1,
                "remaining_retries": remaining_retries,
            },
        }


def engine_error_failure(event: ExecutionError) -> Failure:
    text = f"{event.exception_type} {event.exception_message}".lower()
    out_of_memory = any(marker in text for marker in _OOM_MARKERS)
    return Failure(
        error_type="OUT_OF_MEMORY" if out_of_memory else "NODE_EXECUTION_ERROR",
        message=(
            f"Workflow execution failed during {event.node_type or 'a'} node: "
            f"{event.exception_message.strip()}"
        ),
        retryable=out_of_memory,
        node_id=event.node_id,
        node_type=event.node_type,
        extra={"exception_type": event.exception_type},
    )


def rejection_failure(exc: EnginePromptRejected) -> Failure:
    """ComfyUI's own validation refused the prompt (the catalog drifted): its node_errors,
    in the same shape as our submit-time validation."""
    problems, connections = _map_node_errors(exc.node_errors)
    if not problems and not connections:
        problems.append({"node_id": None, "error": str(exc),
                         "suggestion": "Check the workflow against the workers' nodes"})
    return Failure(
        error_type="ENGINE_VALIDATION_FAILED",
        message=f"ComfyUI refused the workflow: {exc}",
        retryable=False,
        extra={"validation_errors": problems, "invalid_connections": connections,
               "missing_nodes": []},
    )


def _map_node_errors(node_errors: dict[str, Any]
                     ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    problems: list[dict[str, Any]] = []
    connections: list[dict[str, Any]] = []
    for node_id, entry in node_errors.items():
        for error in (entry or {}).get("errors") or []:
            extra = error.get("extra_info") or {}
            if error.get("type") == "return_type_mismatch":
                expected = (extra.get("input_config") or [None])[0]
                connections.append({
                    "from_node": str((extra.get("linked_node") or [None])[0]),
                    "from_socket": str(extra.get("received_type")),
                    "to_node": str(node_id), "to_socket": extra.get("input_name"),
                    "error": f"Type mismatch: {extra.get('received_type')} cannot connect "
                             f"to {expected}"})
                continue
            problems.append({
                "node_id": str(node_id),
                "error": f"{error.get('message', 'invalid')}: {error.get('details', '')}".strip(),
                "suggestion": f"Fix input '{extra.get('input_name')}' of {entry.get('class_type')}"
                if extra.get("input_name") else "Fix this node"})
    return problems, connections
