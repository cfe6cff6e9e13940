"""Structured logs: each line a JSON object carrying the execution and worker it concerns."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator

import pytest
from starlette.types import Message, Receive, Scope, Send

from comfy_serverless.api.log_context import ExecutionLogContext
from comfy_serverless.logs import configure_logging, execution_context, worker_context


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def _lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


async def test_json_lines_carry_the_execution_and_worker_of_their_task(
        restore_logging: None, capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("json")
    log = logging.getLogger("comfy_serverless.test")

    async def worker_task() -> None:
        worker_context("gpu-7")
        with execution_context("exec_abc"):
            log.info("running %s", "exec_abc")
        log.warning("idle")

    await asyncio.create_task(worker_task())
    log.info("api side")
    running, idle, api = _lines(capsys.readouterr().err)
    assert running["message"] == "running exec_abc"
    assert running["execution_id"] == "exec_abc"
    assert running["worker_id"] == "gpu-7"
    assert running["level"] == "INFO"
    assert str(running["time"]).endswith("Z")
    assert "execution_id" not in idle
    assert idle["worker_id"] == "gpu-7"
    assert "worker_id" not in api


def test_text_lines_name_the_execution_for_humans(
        restore_logging: None, capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("text")
    with execution_context("exec_abc"):
        logging.getLogger("comfy_serverless.test").info("done")
    assert capsys.readouterr().err.rstrip().endswith("done [execution_id=exec_abc]")


async def test_requests_about_an_execution_log_with_its_id(
        restore_logging: None, capsys: pytest.CaptureFixture[str]) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        logging.getLogger("comfy_serverless.test").info("handling %s", scope["path"])

    async def receive() -> Message:
        return {"type": "http.request"}

    async def send(message: Message) -> None:
        return None

    configure_logging("json")
    middleware = ExecutionLogContext(app)
    for path in ("/v1/workflows/exec_0a1b/status", "/v1/queue/status"):
        await middleware({"type": "http", "path": path}, receive, send)
    about_execution, other = _lines(capsys.readouterr().err)
    assert about_execution["execution_id"] == "exec_0a1b"
    assert "execution_id" not in other
