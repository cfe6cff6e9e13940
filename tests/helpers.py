"""Helpers for tests that drive a running service: submit, read status, wait with deadlines."""

from __future__ import annotations

import asyncio
import json
import struct
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx

from comfy_serverless.storage.destinations import Destination
from comfy_serverless.store.options import ExecutionOptions, OutputOptions
from comfy_serverless.store.records import ExecutionRecord, NewExecution

T = TypeVar("T")


async def wait_for(check: Callable[[], Awaitable[T | None]], *, timeout: float,
                   interval: float = 0.05, what: str = "condition") -> T:
    """Poll `check` until it returns something truthy, or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)


async def submit(api: httpx.AsyncClient, workflow: dict[str, Any], **extra: Any) -> str:
    response = await api.post("/v1/workflows/execute", json={"workflow": workflow, **extra})
    assert response.status_code == 202, response.text
    return str(response.json()["execution_id"])


async def status_of(api: httpx.AsyncClient, execution_id: str) -> dict[str, Any]:
    response = await api.get(f"/v1/workflows/{execution_id}/status")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def wait_until_finished(api: httpx.AsyncClient, execution_id: str,
                              timeout: float = 120) -> dict[str, Any]:
    async def finished() -> dict[str, Any] | None:
        body = await status_of(api, execution_id)
        return body if body["status"] in ("completed", "failed", "cancelled") else None

    return await wait_for(finished, timeout=timeout, interval=0.1, what=f"{execution_id} to end")


def write_safetensors(path: Path, tensors: dict[str, list[int]],
                      metadata: dict[str, str] | None = None) -> Path:
    """A small, valid safetensors file of fp16 zeros with the given 2-D tensor shapes."""
    header: dict[str, Any] = {"__metadata__": metadata or {}}
    offset = 0
    for name, shape in tensors.items():
        size = 2 * shape[0] * shape[1]
        header[name] = {"dtype": "F16", "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    encoded = json.dumps(header).encode()
    encoded += b" " * (-len(encoded) % 8)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(struct.pack("<Q", len(encoded)) + encoded + bytes(offset))
    return path


def processing_execution(execution_id: str, options: ExecutionOptions | None = None
                         ) -> ExecutionRecord:
    """An execution as a worker holds it after its claim, for tests without a store."""
    return ExecutionRecord(
        id=execution_id, api_key_id="key", status="processing", priority=5, workflow={},
        options=options or ExecutionOptions(), signature="s", webhook_url=None, client_id=None,
        submitted_at=time.time(), started_at=None, finished_at=None, not_before=None,
        attempt=1, max_attempts=1, worker_id="w", lease_owner="w", lease_expires_at=None,
        engine_prompt_id=None, progress=0.0, current_node=None, current_node_id=None,
        current_step=None, total_steps=None, total_nodes=1, completed_nodes=0, gpu_time=None,
        resource_allocation=None, error=None, cancel_reason=None)


def load_image_execution(execution_id: str, *images: str) -> NewExecution:
    """A new execution whose LoadImage nodes name these images, stored locally under
    outputs/<execution_id>/, for tests of input staging."""
    workflow = {str(i): {"class_type": "LoadImage", "inputs": {"image": image}}
                for i, image in enumerate(images, start=1)}
    destination = Destination("local", None, f"outputs/{execution_id}/")
    return NewExecution(
        id=execution_id, api_key_id="k", priority=5, workflow=workflow,
        options=ExecutionOptions(output=OutputOptions(storage=destination.as_stored())),
        signature="",
        webhook_url=None, client_id=None, submitted_at=time.time(), max_attempts=1,
        total_nodes=len(workflow))


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The answer is `status` with the spec's error body and this error_code; its body."""
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert (body["status"], body["error_code"]) == ("error", code), body
    assert isinstance(body["message"], str)
    assert isinstance(body["details"], dict)
    return body
