import json
from typing import Any

import pytest

from comfy_serverless.engine.comfyui.messages import (
    ExecutionCached,
    ExecutionError,
    ExecutionFinished,
    NodeExecuted,
    NodeStarted,
    StepProgress,
    parse_message,
    unwanted_text,
)

PID = "5f0c6b2e-8c1a-4d7e-9a57-0b8d2f1c3e4a"


def test_executing_a_node_then_null() -> None:
    assert parse_message({"type": "executing", "data": {"node": "3", "prompt_id": PID}}) == (
        NodeStarted(PID, "3"))
    assert parse_message({"type": "executing", "data": {"node": None, "prompt_id": PID}}) == (
        ExecutionFinished(PID))


def test_progress_cached_and_executed() -> None:
    progress = {"type": "progress", "data": {"value": 3, "max": 20, "node": "3", "prompt_id": PID}}
    assert parse_message(progress) == StepProgress(PID, "3", 3, 20)
    cached = {"type": "execution_cached", "data": {"nodes": ["4", 5], "prompt_id": PID}}
    assert parse_message(cached) == ExecutionCached(PID, ("4", "5"))
    output = {"images": [{"filename": "a.png", "subfolder": "", "type": "output"}]}
    executed = {"type": "executed", "data": {"node": "9", "output": output, "prompt_id": PID}}
    assert parse_message(executed) == NodeExecuted(PID, "9", output)


def test_execution_error_keeps_node_and_exception() -> None:
    message = {"type": "execution_error", "data": {
        "prompt_id": PID, "node_id": "3", "node_type": "KSampler",
        "exception_type": "torch.OutOfMemoryError", "exception_message": "CUDA out of memory",
        "traceback": ["line 1"]}}
    event = parse_message(message)
    assert isinstance(event, ExecutionError)
    assert (event.node_id, event.node_type, event.exception_type) == (
        "3", "KSampler", "torch.OutOfMemoryError")


def test_messages_without_a_prompt_are_dropped() -> None:
    assert parse_message({"type": "status", "data": {"status": {}}}) is None
    assert parse_message({"type": "crystools.monitor", "data": {"cpu": 3}}) is None
    assert parse_message({"type": "progress_state", "data": {"prompt_id": PID}}) is None
    assert parse_message({"type": "executing", "data": "oops"}) is None


def test_only_real_out_of_memory_errors_are_retryable() -> None:
    from comfy_serverless.worker.failures import engine_error_failure

    def failure(kind: str, message: str) -> bool:
        return engine_error_failure(ExecutionError(PID, "3", "KSampler", kind, message)).retryable

    assert failure("torch.OutOfMemoryError", "CUDA error")
    assert failure("RuntimeError", "CUDA out of memory. Tried to allocate 2.00 GiB")
    assert not failure("RuntimeError", "boom: the room is full")


@pytest.mark.parametrize("message", [
    {"type": "status", "data": {"status": {"exec_info": {"queue_remaining": 1}}}},
    {"type": "progress_state", "data": {"prompt_id": PID, "nodes": {"3": {"value": 1}}}},
])
def test_frames_dropped_unread_are_ones_parse_message_drops(message: dict[str, Any]) -> None:
    text = json.dumps(message)  # as ComfyUI's send_json writes it
    assert unwanted_text(text)
    assert parse_message(json.loads(text)) is None


@pytest.mark.parametrize("kind", ["executing", "executed", "execution_start", "progress",
                                  "execution_error", "execution_cached", "statusx"])
def test_frames_of_other_kinds_are_read(kind: str) -> None:
    assert not unwanted_text(json.dumps({"type": kind, "data": {"prompt_id": PID}}))
    assert not unwanted_text(json.dumps({"data": {}, "type": "status"}))  # parsed as before
