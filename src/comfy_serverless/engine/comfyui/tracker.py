"""Turns one prompt's engine events into progress over the whole workflow and a log.

Progress counts every node of the graph equally; the running node contributes the fraction
of its sampler steps. ComfyUI says when a node *starts* (`executing`), so a node is
complete when the next one starts, or when the prompt ends.

It speaks in its own values (ProgressReading, PromptNote): the worker turns them into the
store's records, so the engine package knows nothing of the store.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from comfy_serverless.engine.comfyui.messages import (
    ConnectionLost,
    EngineEvent,
    ExecutionCached,
    ExecutionFinished,
    ExecutionStarted,
    NodeExecuted,
    NodeStarted,
    StepProgress,
)
from comfy_serverless.loader_inputs import loaded_model_names

__all__ = ["ExecutionTracker", "ProgressReading", "PromptNote"]


@dataclass(frozen=True)
class ProgressReading:
    """How far one prompt has come over the whole workflow, at one moment."""

    progress: float
    current_node: str | None
    current_node_id: str | None
    current_step: int | None
    total_steps: int | None
    completed_nodes: int


@dataclass(frozen=True)
class PromptNote:
    """One thing that happened to the prompt (started, a node completed, a model loaded)."""

    at: float
    event: str
    node_id: str | None
    message: str
    details: dict[str, Any] | None = None


@dataclass
class ExecutionTracker:
    workflow: dict[str, dict[str, Any]]
    clock: Callable[[], float] = time.time
    started_at: float | None = None
    finished_at: float | None = None
    current_node_id: str | None = None
    current_step: int | None = None
    total_steps: int | None = None
    completed: set[str] = field(default_factory=set)
    last_steps: tuple[int, int] | None = None
    stream_broken: bool = False
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    _node_started_at: float = 0.0
    _log: list[PromptNote] = field(default_factory=list)

    @property
    def total_nodes(self) -> int:
        return len(self.workflow)

    def class_of(self, node_id: str | None) -> str | None:
        if node_id is None:
            return None
        node = self.workflow.get(node_id)
        return str(node.get("class_type")) if node else None

    def apply(self, event: EngineEvent) -> None:
        match event:
            case ExecutionStarted():
                self.started_at = self.clock()
                self._record("execution_started", None, "Workflow execution initiated")
            case ExecutionCached(node_ids=node_ids):
                for node_id in node_ids:
                    self._complete(node_id, cached=True)
            case NodeStarted(node_id=node_id):
                self._finish_current()
                self.current_node_id = node_id
                self.current_step = self.total_steps = None
                self._node_started_at = self.clock()
            case StepProgress(value=value, maximum=maximum):
                self.current_step, self.total_steps = value, maximum
                self.last_steps = (value, maximum)
            case NodeExecuted(node_id=node_id, output=output):
                self.outputs[node_id] = output
            case ExecutionFinished():
                self._finish_current()
                self.finished_at = self.clock()
            case ConnectionLost():
                self.stream_broken = True

    def streamed_outputs(self) -> dict[str, dict[str, Any]] | None:
        """The outputs that the `executed` messages carried, once the prompt finished, if
        every message of it was seen, from `execution_start` on, on one unbroken socket:
        ComfyUI sends them in order on it, before `executing {node: null}`, and they hold
        what its history records (a cached node's too). None when one may have been
        missed (a reconnect, a prompt already started when it was followed): the history
        is then the source."""
        if self.started_at is None or self.finished_at is None or self.stream_broken:
            return None
        return {node_id: output for node_id, output in self.outputs.items() if output}

    def snapshot(self) -> ProgressReading:
        done = len(self.completed)
        fraction = 0.0
        if self.current_node_id and self.current_step is not None and self.total_steps:
            fraction = min(1.0, self.current_step / self.total_steps)
        progress = min(1.0, (done + fraction) / self.total_nodes) if self.total_nodes else 0.0
        return ProgressReading(
            progress=round(progress, 4),
            current_node=self.class_of(self.current_node_id),
            current_node_id=self.current_node_id,
            current_step=self.current_step,
            total_steps=self.total_steps,
            completed_nodes=done,
        )

    def final_snapshot(self) -> ProgressReading:
        """What a completed execution shows: everything done, the last sampler's steps."""
        step, total = self.last_steps or (None, None)
        return ProgressReading(1.0, None, None, step, total, self.total_nodes)

    def drain_log(self) -> list[PromptNote]:
        entries, self._log = self._log, []
        return entries

    def engine_time(self) -> float:
        """Seconds ComfyUI spent on the prompt (start to finish, or to now)."""
        if self.started_at is None:
            return 0.0
        return max(0.0, (self.finished_at or self.clock()) - self.started_at)

    # ------------------------------------------------------------------ internals

    def _finish_current(self) -> None:
        if self.current_node_id is not None:
            self._complete(self.current_node_id, cached=False)
            self.current_node_id = None

    def _complete(self, node_id: str, *, cached: bool) -> None:
        # Only the workflow's own nodes count: the worker's pinned loaders are in the prompt
        # too (cached, or run), and are no node of the user's.
        if node_id in self.completed or node_id not in self.workflow:
            return
        self.completed.add(node_id)
        class_type = self.class_of(node_id) or "node"
        inputs = dict(self.workflow.get(node_id, {}).get("inputs") or {})
        duration = 0.0 if cached else round(self.clock() - self._node_started_at, 4)
        details: dict[str, Any] = {"class_type": class_type, "duration": duration}
        if cached:
            details["cached"] = True
        models = loaded_model_names(class_type, inputs)
        if not cached and models:
            self._record("model_loaded", node_id, f"{class_type} loaded {models[0]}",
                         {"model": models[0], "load_time": duration})
        verb = "served from cache" if cached else "completed"
        self._record("node_completed", node_id, f"{class_type} {verb}", details)

    def _record(self, event: str, node_id: str | None, message: str,
                details: dict[str, Any] | None = None) -> None:
        self._log.append(PromptNote(self.clock(), event, node_id, message, details))
