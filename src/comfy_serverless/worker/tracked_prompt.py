"""One prompt's progress and log, as the store records them.

The engine's tracker (engine/comfyui/tracker.py) speaks in its own values, so that the
engine package knows nothing of the store; this is the one place that translates them into
the store's ProgressSnapshot and LogEntry.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from comfy_serverless.engine.comfyui.messages import EngineEvent
from comfy_serverless.engine.comfyui.tracker import ExecutionTracker, ProgressReading, PromptNote
from comfy_serverless.store.records import LogEntry, ProgressSnapshot

__all__ = ["TrackedPrompt", "log_entry", "progress_snapshot"]


def progress_snapshot(reading: ProgressReading) -> ProgressSnapshot:
    return ProgressSnapshot(
        progress=reading.progress, current_node=reading.current_node,
        current_node_id=reading.current_node_id, current_step=reading.current_step,
        total_steps=reading.total_steps, completed_nodes=reading.completed_nodes)


def log_entry(note: PromptNote) -> LogEntry:
    return LogEntry(note.at, note.event, note.node_id, note.message, note.details)


class TrackedPrompt:
    """The executor's view of the engine tracker of one prompt, in the store's records."""

    def __init__(self, workflow: dict[str, dict[str, Any]],
                 clock: Callable[[], float] = time.time) -> None:
        self._tracker = ExecutionTracker(workflow, clock)

    def apply(self, event: EngineEvent) -> None:
        self._tracker.apply(event)

    @property
    def started_at(self) -> float | None:
        return self._tracker.started_at

    @property
    def current_node_id(self) -> str | None:
        return self._tracker.current_node_id

    @property
    def total_nodes(self) -> int:
        return self._tracker.total_nodes

    def class_of(self, node_id: str | None) -> str | None:
        return self._tracker.class_of(node_id)

    def snapshot(self) -> ProgressSnapshot:
        return progress_snapshot(self._tracker.snapshot())

    def final_snapshot(self) -> ProgressSnapshot:
        return progress_snapshot(self._tracker.final_snapshot())

    def drain_log(self) -> list[LogEntry]:
        return [log_entry(note) for note in self._tracker.drain_log()]

    def streamed_outputs(self) -> dict[str, Any] | None:
        """The prompt's outputs as its events carried them; None: read its history."""
        outputs = self._tracker.streamed_outputs()
        return None if outputs is None else dict(outputs)

    def engine_time(self) -> float:
        return self._tracker.engine_time()
