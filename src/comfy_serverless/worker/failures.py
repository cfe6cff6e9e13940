"""What went wrong in an execution, as stored and as the spec's error body shows it.

Every Failure is scrubbed of host paths when it is made, so that no client sees the server's
folders in a status (`error`, `execution_log`), a result or a webhook: ComfyUI's folders, the
data and engine folders (elide_host_roots), home and temp paths, anything up to one of
ComfyUI's folders (`…/output/`), `file://` paths and paths after a ':' all become
`…/<name>` (scrub_host_paths).
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from comfy_serverless.engine.comfyui.messages import ExecutionError
from comfy_serverless.errors import EnginePromptRejected
from comfy_serverless.store.records import ExecutionRecord

__all__ = [
    "Failure",
    "elide_host_roots",
    "engine_error_failure",
    "rejection_failure",
    "scrub_host_paths",
    "scrubbed",
]

_OOM_MARKERS = ("out of memory", "outofmemoryerror")
# The folders of an absolute path, POSIX or Windows, that is not the path of a URL (whose
# slashes follow a ':' , a '/' or the host name): '/srv/x/output/cat.png' keeps 'cat.png'.
# A path may follow a ':' ('path:/srv/a'), and a file:// URL's path is a host path too.
_HOST_FOLDERS = re.compile(
    r"(?:(?<=file://)|(?<![\w.~/\\-]))"
    r"(?:[A-Za-z]:)?[/\\](?:[^\s'\"`/\\:,;()\[\]{}<>]+[/\\])+")
# Everything up to one of ComfyUI's own folders, spaces included ('/srv/comfy data/output/').
_UP_TO_COMFYUI_FOLDER = re.compile(
    r"(?:(?<=file://)|(?<![\w.~/\\-]))(?:[A-Za-z]:)?[/\\](?![/\\])[^\n'\"`<>]*?[/\\]"
    r"(?:input|output|temp|models|user|custom_nodes)[/\\]")
_ELIDED = "…/"
# The roots the process was configured with (elide_host_roots): data, engine, ComfyUI folders.
_CONFIGURED_ROOTS: set[str] = set()


def elide_host_roots(roots: Iterable[str | Path]) -> None:
    """Elide these folders too, wherever they appear: the configured data and engine folders
    and ComfyUI's, whose names may hold spaces that the pattern alone would cut short."""
    _CONFIGURED_ROOTS.update(str(root).rstrip("/") for root in roots if len(str(root)) > 1)


def _known_roots() -> list[str]:
    """Folders whose names may hold spaces, which the pattern alone would cut short."""
    roots = {str(Path.home()), tempfile.gettempdir(), str(Path.cwd()), *_CONFIGURED_ROOTS}
    return sorted((root for root in roots if len(root) > 1), key=len, reverse=True)


def scrub_host_paths(text: str) -> str:
    """`text` with the folders of every host path elided; file names are kept."""
    for root in _known_roots():
        text = text.replace(root + "/", "/elided/").replace(root, "/elided")
    text = _UP_TO_COMFYUI_FOLDER.sub(_ELIDED, text)
    return _HOST_FOLDERS.sub(_ELIDED, text)


def scrubbed(value: Any) -> Any:
    """A copy of a JSON value with scrub_host_paths applied to every string in it, walked
    with a stack of its own."""
    holder: list[Any] = [value]
    pending: list[tuple[Any, Any]] = [(holder, 0)]
    while pending:
        container, key = pending.pop()
        item = container[key]
        if isinstance(item, str):
            container[key] = scrub_host_paths(item)
        elif isinstance(item, dict):
            container[key] = mapping = dict(item)
            pending.extend((mapping, name) for name in mapping)
        elif isinstance(item, list):
            container[key] = items = list(item)
            pending.extend((items, index) for index in range(len(items)))
    return holder[0]


@dataclass(frozen=True)
class Failure:
    error_type: str
    message: str
    retryable: bool
    node_id: str | None = None
    node_type: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "message", scrub_host_paths(self.message))
        object.__setattr__(self, "extra", scrubbed(self.extra))

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
