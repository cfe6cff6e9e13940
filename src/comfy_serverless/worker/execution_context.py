"""What the executor keeps while it runs one attempt, and the settings it runs under."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Literal

from comfy_serverless.engine.comfyui.client import Subscription
from comfy_serverless.engine.comfyui.device_usage import UsageWindow
from comfy_serverless.engine.comfyui.tuning import EngineTuning
from comfy_serverless.store.records import ExecutionRecord, Lease
from comfy_serverless.worker.progress_writer import ProgressWriter
from comfy_serverless.worker.tracked_prompt import TrackedPrompt

__all__ = ["ExecutionContext", "ExecutorConfig", "Outcome", "StopRun"]

Outcome = Literal["completed", "failed", "requeued", "cancelled", "lost", "handed_back"]


@dataclass(frozen=True)
class ExecutorConfig:
    worker_id: str
    lease_seconds: float
    heartbeat_interval: float
    cancel_poll_interval: float
    progress_write_interval: float
    # After this long without an event for its prompt, the executor asks ComfyUI directly
    # (/history, /queue) in case an event was lost.
    silence_check_interval: float = 5.0
    # A prompt still pending this long after submission, while ComfyUI runs nothing, means
    # its prompt worker has stopped: the watchdog restarts ComfyUI and retries the job.
    watchdog_timeout: float = 60.0
    progress_event_interval: float = 1.0
    # Leave each prompt in ComfyUI's history (by default it is dropped once the attempt
    # ends: ComfyUI keeps up to 10,000 in memory).
    keep_engine_history: bool = False
    reconnect_timeout: float = 10.0


class StopRun(Exception):
    """Leaves the event loop of an attempt with its outcome already decided."""

    def __init__(self, outcome: Outcome) -> None:
        self.outcome = outcome


@dataclass
class ExecutionContext:
    """One attempt: its prompt in ComfyUI, what follows it, and when each check last ran."""

    execution: ExecutionRecord
    prompt_id: str
    tracker: TrackedPrompt
    subscription: Subscription
    progress: ProgressWriter
    timeout: float | None
    cancel_event: asyncio.Event
    tuning: EngineTuning = field(default_factory=EngineTuning)
    usage: UsageWindow = field(default_factory=UsageWindow)
    prefetched: bool = False
    deadline: float | None = None
    submitted_at: float = 0.0
    last_lease_renewal: float = 0.0
    last_cancel_poll: float = 0.0
    last_event_at: float = 0.0
    failing: bool = False  # a failure is being recorded (worker/defects.py)
    # The model files the attempt uses, held against eviction until it ends.
    held_models: contextlib.AsyncExitStack = field(default_factory=contextlib.AsyncExitStack)

    @property
    def lease(self) -> Lease:
        return self.execution.lease

    def usage_metrics(self) -> dict[str, float | None]:
        """The engine's resource use over the attempt, as recorded with its outcome."""
        return self.usage.metrics(self.tuning.gpu_memory_fraction)
