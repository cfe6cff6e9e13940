"""ComfyUI's WebSocket messages, parsed into small typed events for one prompt.

Only the messages that change an execution's state are kept; the rest (status, previews,
crystools…) are dropped by `parse_message`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "EngineEvent",
    "ConnectionLost",
    "ExecutionCached",
    "ExecutionError",
    "ExecutionFinished",
    "ExecutionInterrupted",
    "ExecutionStarted",
    "NodeExecuted",
    "NodeStarted",
    "PreviewImage",
    "StepProgress",
    "parse_message",
    "parse_preview",
    "unwanted_text",
]

_PREVIEW_WITH_METADATA = 4
# How ComfyUI's send_json (json.dumps) begins the messages that parse_message drops anyway:
# queue status to every client, and the per-node progress_state, which lists every active
# node each time and so grows with the graph. Any other spelling is simply parsed.
_UNWANTED_STARTS = ('{"type": "status"', '{"type": "progress_state"')


@dataclass(frozen=True)
class ExecutionStarted:
    prompt_id: str


@dataclass(frozen=True)
class ExecutionCached:
    prompt_id: str
    node_ids: tuple[str, ...]


@dataclass(frozen=True)
class NodeStarted:
    prompt_id: str
    node_id: str


@dataclass(frozen=True)
class StepProgress:
    prompt_id: str
    node_id: str | None
    value: int
    maximum: int


@dataclass(frozen=True)
class NodeExecuted:
    prompt_id: str
    node_id: str
    output: dict[str, Any]


@dataclass(frozen=True)
class ExecutionFinished:
    """`executing {node: null}`: ComfyUI has written the prompt's history."""

    prompt_id: str


@dataclass(frozen=True)
class ExecutionError:
    prompt_id: str
    node_id: str | None
    node_type: str | None
    exception_type: str
    exception_message: str
    traceback: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ExecutionInterrupted:
    prompt_id: str
    node_id: str | None


@dataclass(frozen=True)
class PreviewImage:
    """A sampler's preview (binary frame PREVIEW_IMAGE_WITH_METADATA), e.g. one per step."""

    prompt_id: str
    node_id: str | None
    content_type: str
    image: bytes


@dataclass(frozen=True)
class ConnectionLost:
    """Not a ComfyUI message: the WebSocket dropped, or the engine went away."""

    reason: str


EngineEvent = (
    ExecutionStarted
    | ExecutionCached
    | NodeStarted
    | StepProgress
    | NodeExecuted
    | ExecutionFinished
    | ExecutionError
    | ExecutionInterrupted
    | PreviewImage
    | ConnectionLost
)


def _optional_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _executing(prompt_id: str, data: dict[str, Any]) -> EngineEvent:
    node = data.get("node")
    if node is None:
        return ExecutionFinished(prompt_id)
    return NodeStarted(prompt_id, str(node))


def _error(prompt_id: str, data: dict[str, Any]) -> EngineEvent:
    return ExecutionError(
        prompt_id=prompt_id,
        node_id=_optional_str(data.get("node_id")),
        node_type=_optional_str(data.get("node_type")),
        exception_type=str(data.get("exception_type", "")),
        exception_message=str(data.get("exception_message", "")),
        traceback=[str(line) for line in data.get("traceback") or []],
    )


def _build(kind: str, prompt_id: str, data: dict[str, Any]) -> EngineEvent | None:
    match kind:
        case "execution_start":
            return ExecutionStarted(prompt_id)
        case "execution_cached":
            return ExecutionCached(prompt_id, tuple(str(n) for n in data.get("nodes") or ()))
        case "executing":
            return _executing(prompt_id, data)
        case "progress":
            return StepProgress(
                prompt_id, _optional_str(data.get("node")),
                int(data.get("value", 0)), int(data.get("max", 0)),
            )
        case "executed":
            return NodeExecuted(prompt_id, str(data.get("node")), dict(data.get("output") or {}))
        case "execution_error":
            return _error(prompt_id, data)
        case "execution_interrupted":
            return ExecutionInterrupted(prompt_id, _optional_str(data.get("node_id")))
    return None


def unwanted_text(text: str) -> bool:
    """Whether a text frame is one parse_message would drop, told without decoding it."""
    return text.startswith(_UNWANTED_STARTS)


def parse_message(message: dict[str, Any]) -> EngineEvent | None:
    """Turn one decoded WebSocket JSON message into an event, or None if it is not one."""
    data = message.get("data")
    if not isinstance(data, dict):
        return None
    prompt_id = data.get("prompt_id")
    if not isinstance(prompt_id, str):
        return None
    return _build(str(message.get("type")), prompt_id, data)


def parse_preview(frame: bytes) -> PreviewImage | None:
    """`[event:4][metadata length:4][metadata JSON][image]`, all big-endian; None otherwise."""
    if len(frame) < 8 or int.from_bytes(frame[:4], "big") != _PREVIEW_WITH_METADATA:
        return None
    length = int.from_bytes(frame[4:8], "big")
    try:
        metadata = json.loads(frame[8:8 + length])
    except ValueError:
        return None
    prompt_id = metadata.get("prompt_id") if isinstance(metadata, dict) else None
    if not isinstance(prompt_id, str):
        return None
    return PreviewImage(prompt_id, _optional_str(metadata.get("node_id")),
                        str(metadata.get("image_type") or "image/jpeg"), frame[8 + length:])
