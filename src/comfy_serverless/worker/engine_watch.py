"""What became of our prompt when ComfyUI went quiet (reconciliation and the hung-engine
watchdog), and taking it back out of ComfyUI.

Events can be lost (the WebSocket dropped, or ComfyUI said nothing for a while), so the
executor asks ComfyUI itself, through /history and /queue, and gets a verdict back:

    socket down, process gone or not back in time ──► EngineLost
    /history has the prompt ─────────────────────────► PromptFinished (collect its outputs)
    queued, nothing running, pending too long ──────► EngineHung (ComfyUI was restarted)
    queued or running ───────────────────────────────► None (keep following its events)
    neither in /history nor in /queue ──────────────► EngineLost

The executor turns a verdict into an outcome; this module decides nothing about retries.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from comfy_serverless.engine.comfyui.client import ComfyUIClient, Subscription
from comfy_serverless.engine.comfyui.messages import (
    ConnectionLost,
    EngineEvent,
    ExecutionError,
    ExecutionFinished,
    ExecutionInterrupted,
    PreviewImage,
)
from comfy_serverless.engine.comfyui.supervisor import Engine
from comfy_serverless.errors import EngineUnavailable
from comfy_serverless.worker.failures import Failure

__all__ = ["EngineHung", "EngineLost", "EngineWatch", "PromptFinished", "Verdict"]

_RECONNECT_POLL_SECONDS = 0.1
_INTERRUPT_GRACE = 10.0


@dataclass(frozen=True)
class PromptFinished:
    """ComfyUI holds the prompt's history: its outputs can be collected."""


@dataclass(frozen=True)
class EngineLost:
    """ComfyUI exited, stayed unreachable, or forgot the prompt."""

    reason: str


@dataclass(frozen=True)
class EngineHung:
    """ComfyUI answered HTTP but its prompt worker had stopped; it has been restarted."""

    failure: Failure


Verdict = PromptFinished | EngineLost | EngineHung | None


@dataclass(frozen=True)
class PromptWatched:
    """What the watch needs to know of the prompt it asks about."""

    prompt_id: str
    started: bool
    submitted_at: float


class EngineWatch:
    def __init__(self, engine: Engine, client: ComfyUIClient, *, reconnect_timeout: float,
                 watchdog_timeout: float, clock: Callable[[], float] = time.time) -> None:
        self._engine = engine
        self._client = client
        self._reconnect_timeout = reconnect_timeout
        self._watchdog_timeout = watchdog_timeout
        self._clock = clock

    async def verdict(self, prompt: PromptWatched, reason: str) -> Verdict:
        """Ask ComfyUI directly what became of the prompt (`reason`: why we ask)."""
        if not await self._engine_back():
            return EngineLost(f"ComfyUI exited or is unreachable ({reason})")
        try:
            if await self._client.history(prompt.prompt_id) is not None:
                return PromptFinished()
            queue = await self._client.queue()
            if _prompt_in_queue(queue, prompt.prompt_id):
                return await self._hung(prompt) if self._is_hung(prompt, queue) else None
        except EngineUnavailable as exc:
            return EngineLost(str(exc))
        return EngineLost("ComfyUI lost the prompt")

    async def interrupt(self, prompt_id: str, subscription: Subscription,
                        seen: Callable[[EngineEvent], None]) -> None:
        """Take the prompt out of ComfyUI's queue, or stop it running, and wait (a grace
        at most) until ComfyUI has let go. Its events meanwhile go to `seen`, so that
        the files its nodes report meanwhile are identified and removed too."""
        try:
            await self._client.delete_queued([prompt_id])
            await self._client.interrupt(prompt_id)
        except EngineUnavailable:
            return
        deadline = time.monotonic() + _INTERRUPT_GRACE
        while time.monotonic() < deadline:
            event = await subscription.next(deadline - time.monotonic())
            if event is not None and not isinstance(event, PreviewImage):
                seen(event)
            if isinstance(event, ExecutionInterrupted | ExecutionFinished | ExecutionError
                          | ConnectionLost) or event is None:
                return

    async def _engine_back(self) -> bool:
        """After the socket dropped: True once it is up again; False as soon as the process
        is seen gone (it may be reaped a moment after the socket closes) or after
        reconnect_timeout, which is kept well inside the lease, so the job is retried by us
        rather than rescued."""
        deadline = time.monotonic() + self._reconnect_timeout
        while time.monotonic() < deadline:
            if not self._engine.is_alive():
                return False
            if self._client.connected:
                return True
            await asyncio.sleep(_RECONNECT_POLL_SECONDS)
        return False

    def _is_hung(self, prompt: PromptWatched, queue: dict[str, Any]) -> bool:
        waited = self._clock() - prompt.submitted_at
        return (not prompt.started and not queue.get("queue_running")
                and waited >= self._watchdog_timeout)

    async def _hung(self, prompt: PromptWatched) -> EngineHung:
        """The watchdog: ComfyUI answers HTTP, but its prompt worker has stopped."""
        waited = self._clock() - prompt.submitted_at
        restarted = await self._engine.restart()
        return EngineHung(Failure(
            error_type="ENGINE_HUNG", retryable=True,
            message=f"ComfyUI queued the prompt but ran nothing for {waited:.0f}s"
                    + ("; it was restarted" if restarted else "")))


def _prompt_in_queue(queue: dict[str, Any], prompt_id: str) -> bool:
    for section in ("queue_running", "queue_pending"):
        for item in queue.get(section) or []:
            if isinstance(item, list) and len(item) > 1 and item[1] == prompt_id:
                return True
    return False
