"""The failures a worker reports about its attempt: ComfyUI's execution errors (an out of
memory one is worth a retry), ComfyUI refusing the prompt (its node_errors, in the shape
of our submit-time validation), and a model source that could not be had. What becomes of
them is decided in queue/outcome.py, which also defines the Failure value (exported here
too, as the worker's vocabulary).
"""

from __future__ import annotations

from typing import Any

from comfy_serverless.engine.comfyui.messages import ExecutionError
from comfy_serverless.errors import EnginePromptRejected, StorageError
from comfy_serverless.queue.outcome import Failure
from comfy_serverless.worker.model_fetch import ModelFetchFailed

__all__ = ["SUBMISSION_ERRORS", "Failure", "engine_error_failure", "rejection_failure",
           "submission_failure"]

# What can keep a prompt from being submitted, short of the engine: submission_failure's.
SUBMISSION_ERRORS = (StorageError, ModelFetchFailed)

_OOM_MARKERS = ("out of memory", "outofmemoryerror")


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


def submission_failure(exc: StorageError | ModelFetchFailed) -> Failure:
    """What kept the prompt from being submitted: a staged input that cannot be read back
    (INPUT_UNAVAILABLE), or a model source that could not be had (MODEL_UNAVAILABLE, on the
    loader's node: retryable when the network failed, not when the bytes were wrong or
    policy refused). Messages come from the source's display form, never a credential."""
    if isinstance(exc, StorageError):
        return Failure(error_type="INPUT_UNAVAILABLE", retryable=False,
                       message=f"A staged input image could not be read: {exc}")
    return Failure(error_type="MODEL_UNAVAILABLE", retryable=exc.retryable,
                   message=f"Node {exc.node_id}: {exc}", node_id=exc.node_id,
                   node_type=exc.class_type,
                   extra={"input": exc.input, "model_source": exc.display})


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
            problems.append(_node_problem(str(node_id), entry.get("class_type"), error))
    return problems, connections


def _node_problem(node_id: str, class_type: Any, error: dict[str, Any]) -> dict[str, Any]:
    """One of ComfyUI's node errors. Its `input_name` is the node's own input, except in
    `exception_during_inner_validation`: there ComfyUI files the error under the upstream
    node that failed, with the input of the downstream node that links to it."""
    extra = error.get("extra_info") or {}
    text = f"{error.get('message', 'invalid')}: {error.get('details', '')}".strip()
    input_name = extra.get("input_name")
    if error.get("type") == "exception_during_inner_validation":
        text = (f"{error.get('message')}: {extra.get('exception_type', 'an exception')} "
                f"{error.get('details', '')}").strip()
        hint = (f"Fix the inputs of {class_type} (node '{node_id}'), which feeds input "
                f"'{input_name}' of a node downstream")
    elif input_name:
        hint = f"Fix input '{input_name}' of {class_type} (node '{node_id}')"
    else:
        hint = "Fix this node"
    return {"node_id": node_id, "error": text, "suggestion": hint}
