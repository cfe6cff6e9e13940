"""The verdicts of the engine watch: what became of a prompt when ComfyUI went quiet."""

from __future__ import annotations

from typing import Any, cast

from comfy_serverless.engine.comfyui.client import ComfyUIClient
from comfy_serverless.engine.comfyui.supervisor import Engine
from comfy_serverless.errors import EngineUnavailable
from comfy_serverless.worker.engine_watch import (
    EngineHung,
    EngineLost,
    EngineWatch,
    PromptFinished,
    PromptWatched,
)

PID = "prompt-1"


class FakeEngine:
    def __init__(self, *, alive: bool = True) -> None:
        self.alive = alive
        self.restarts = 0

    def is_alive(self) -> bool:
        return self.alive

    async def restart(self) -> bool:
        self.restarts += 1
        return True


class FakeClient:
    def __init__(self, *, history: dict[str, Any] | None = None,
                 queue: dict[str, Any] | None = None, connected: bool = True) -> None:
        self.connected = connected
        self._history = history
        self._queue = queue or {}

    async def history(self, prompt_id: str) -> dict[str, Any] | None:
        return self._history

    async def queue(self) -> dict[str, Any]:
        if self._queue.get("down"):
            raise EngineUnavailable("connection refused")
        return self._queue


def _watch(engine: FakeEngine, client: FakeClient, now: float = 100.0) -> EngineWatch:
    return EngineWatch(cast(Engine, engine), cast(ComfyUIClient, client),
                       reconnect_timeout=0.3, watchdog_timeout=60.0, clock=lambda: now)


def _pending(prompt_id: str) -> dict[str, Any]:
    return {"queue_running": [], "queue_pending": [[0, prompt_id, {}, {}, []]]}


async def test_a_prompt_in_history_is_finished() -> None:
    watch = _watch(FakeEngine(), FakeClient(history={"outputs": {}}))
    assert await watch.verdict(PromptWatched(PID, True, 0.0), "socket closed") == PromptFinished()


async def test_a_prompt_still_queued_is_followed_on() -> None:
    watch = _watch(FakeEngine(), FakeClient(queue=_pending(PID)), now=30.0)
    assert await watch.verdict(PromptWatched(PID, False, 0.0), "quiet") is None


async def test_a_prompt_pending_past_the_watchdog_while_nothing_runs_restarts_comfyui() -> None:
    engine = FakeEngine()
    watch = _watch(engine, FakeClient(queue=_pending(PID)), now=75.0)
    verdict = await watch.verdict(PromptWatched(PID, False, 0.0), "quiet")
    assert isinstance(verdict, EngineHung)
    assert (verdict.failure.error_type, verdict.failure.retryable) == ("ENGINE_HUNG", True)
    assert verdict.failure.message == (
        "ComfyUI queued the prompt but ran nothing for 75s; it was restarted")
    assert engine.restarts == 1


async def test_a_started_prompt_is_never_taken_for_hung() -> None:
    engine = FakeEngine()
    watch = _watch(engine, FakeClient(queue=_pending(PID)), now=500.0)
    assert await watch.verdict(PromptWatched(PID, True, 0.0), "quiet") is None
    assert engine.restarts == 0


async def test_a_prompt_comfyui_forgot_is_lost() -> None:
    watch = _watch(FakeEngine(), FakeClient(queue=_pending("another")))
    assert await watch.verdict(PromptWatched(PID, True, 0.0), "quiet") == EngineLost(
        "ComfyUI lost the prompt")


async def test_an_exited_or_unreachable_comfyui_is_lost() -> None:
    gone = _watch(FakeEngine(alive=False), FakeClient(connected=False))
    assert await gone.verdict(PromptWatched(PID, True, 0.0), "socket closed") == EngineLost(
        "ComfyUI exited or is unreachable (socket closed)")
    refused = _watch(FakeEngine(), FakeClient(queue={"down": True}))
    assert await refused.verdict(PromptWatched(PID, True, 0.0), "quiet") == EngineLost(
        "connection refused")
