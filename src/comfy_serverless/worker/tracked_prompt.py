"""One prompt's progress and log, as the store records them, and the files it reported.

The engine's tracker (engine/comfyui/tracker.py) speaks in its own values, so that the
engine package knows nothing of the store; this is the one place that translates them into
the store's ProgressSnapshot and LogEntry. The files a node reports are identified as they
come (worker/engine_files.py), so that the attempt's cleanup removes them, and only them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from comfy_serverless.engine.comfyui.client import WrittenFile
from comfy_serverless.engine.comfyui.messages import EngineEvent, NodeExecuted
from comfy_serverless.engine.comfyui.tracker import ExecutionTracker, ProgressReading, PromptNote
from comfy_serverless.queue.outcome import Failure
from comfy_serverless.store.records import LogEntry, ProgressSnapshot

__all__ = ["TrackedPrompt", "log_entry", "progress_snapshot"]


def progress_snapshot(reading: ProgressReading) -> ProgressSnapshot:
    return ProgressSnapshot(
        progress=reading.progress, current_node=reading.current_node,
        current_node_id=reading.current_node_id, current_step=reading.current_step,
        total_steps=reading.total_steps, completed_nodes=reading.completed_nodes)


def log_entry(note: PromptNote) -> LogEntry:
    return LogEntry(note.at, note.event, note.node_id, note.message, note.details)


def _nothing(_node_id: str, _output: dict[str, Any]) -> list[WrittenFile]:
    return []


class TrackedPrompt:
    """The executor's view of the engine tracker of one prompt, in the store's records."""

    def __init__(self, workflow: dict[str, dict[str, Any]],
                 clock: Callable[[], float] = time.time,
                 identify: Callable[[str, dict[str, Any]], list[WrittenFile]] = _nothing
                 ) -> None:
        self._tracker = ExecutionTracker(workflow, clock)
        self._identify = identify
        self.reported_files: list[WrittenFile] = []

    def apply(self, event: EngineEvent) -> None:
        self._tracker.apply(event)
        if isinstance(event, NodeExecuted):
            self.reported_files += self._identify(event.node_id, event.output)

    def submitting(self, workflow: dict[str, dict[str, Any]]) -> None:
        """The workflow as it goes to ComfyUI (same nodes, model sources replaced by their
        placed file names): the log then names the file loaded, not a source's URL."""
        self._tracker.workflow = workflow

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

    def failure_here(self, error_type: str, message: str, *, retryable: bool) -> Failure:
        """A failure of the node running now (none before the first starts)."""
        node_id = self._tracker.current_node_id
        return Failure(error_type=error_type, message=message, retryable=retryable,
                       node_id=node_id, node_type=self._tracker.class_of(node_id))

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
