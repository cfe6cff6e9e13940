"""A real service, as a new user runs it: `comfy-serverless serve` over a real ComfyUI on the CPU.

The engine (ComfyUI and its virtualenv) is installed on first use and reused afterwards; the
tiny random-weight SD1.5 checkpoint is built once and cached in the engine's models folder.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, TypeVar

import httpx
import pytest

from comfy_serverless.cli import build_tiny_checkpoint
from comfy_serverless.engine.comfyui.installer import EngineLayout, install_engine
from comfy_serverless.settings import Settings
from comfy_serverless.testing import LocalService

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


@pytest.fixture(scope="session")
def engine_layout() -> EngineLayout:
    layout = install_engine(EngineLayout(Settings().engine_dir))
    build_tiny_checkpoint(layout)
    return layout


@pytest.fixture(scope="session")
def service(engine_layout: EngineLayout, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[LocalService]:
    data_dir = tmp_path_factory.mktemp("service-data")
    with LocalService.start(data_dir, engine_layout.root,
                            extra_env={"COMFY_SERVERLESS_HEARTBEAT_INTERVAL": "1"}) as running:
        yield running


@pytest.fixture(scope="session")
def api_key(service: LocalService) -> str:
    return service.new_key()


@pytest.fixture
async def api(service: LocalService, api_key: str) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {api_key}"}
    async with httpx.AsyncClient(base_url=service.base_url, headers=headers,
                                 timeout=30) as client:
        yield client


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
