"""A real service, as a new user runs it: `comfy-serverless serve` over a real ComfyUI on the CPU.

The engine (ComfyUI and its virtualenv) is installed on first use and reused afterwards; the
tiny random-weight SD1.5 checkpoint is built once and cached in the engine's models folder.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from comfy_serverless.cli import build_tiny_checkpoint
from comfy_serverless.engine.comfyui.installer import EngineLayout, install_engine
from comfy_serverless.settings import Settings

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


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


@dataclass
class RunningService:
    base_url: str
    comfyui_url: str
    data_dir: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes]
    key: str

    def cli(self, *args: str) -> str:
        return subprocess.run(
            [sys.executable, "-m", "comfy_serverless.cli", *args], env=self.env,
            capture_output=True, text=True, check=True,
        ).stdout.strip()

    def new_key(self, *args: str) -> str:
        return self.cli("keys", "create", *args)

    def comfyui_pid(self) -> int | None:
        port_flag = f"--port\x00{self.comfyui_url.rsplit(':', 1)[1]}\x00"
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                if port_flag in (proc / "cmdline").read_text() and "main.py" in (
                        proc / "cmdline").read_text():
                    return int(proc.name)
        return None


def _start_service(data_dir: Path, engine_dir: Path) -> RunningService:
    api_port, comfyui_port = free_port(), free_port()
    env = {
        **os.environ,
        "COMFY_SERVERLESS_DATA_DIR": str(data_dir),
        "COMFY_SERVERLESS_ENGINE_DIR": str(engine_dir),
        "COMFY_SERVERLESS_COMFYUI_PORT": str(comfyui_port),
        "COMFY_SERVERLESS_HEARTBEAT_INTERVAL": "1",
    }
    env.pop("COMFY_SERVERLESS_DATABASE_URL", None)
    env.pop("DATABASE_URL", None)
    log = (data_dir / "service.log").open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "comfy_serverless.cli", "serve", "--port", str(api_port)],
        env=env, stdout=log, stderr=log,
    )
    service = RunningService(
        base_url=f"http://127.0.0.1:{api_port}", comfyui_url=f"http://127.0.0.1:{comfyui_port}",
        data_dir=data_dir, env=env, process=process, key="",
    )
    _wait_ready(service)
    service.key = service.new_key()
    return service


def _wait_ready(service: RunningService, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if service.process.poll() is not None:
            log = (service.data_dir / "service.log").read_text()[-3000:]
            raise RuntimeError(f"the service exited at start:\n{log}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(service.base_url + "/readyz", timeout=1).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError("the service did not become ready")


def _stop_service(service: RunningService) -> None:
    comfyui_pid = service.comfyui_pid()
    service.process.send_signal(signal.SIGTERM)
    try:
        service.process.wait(30)
    except subprocess.TimeoutExpired:
        service.process.kill()
        service.process.wait()
    if comfyui_pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(comfyui_pid, signal.SIGKILL)


@pytest.fixture(scope="session")
def service(engine_layout: EngineLayout, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[RunningService]:
    running = _start_service(tmp_path_factory.mktemp("service-data"), engine_layout.root)
    try:
        yield running
    finally:
        _stop_service(running)


@pytest.fixture
async def api(service: RunningService) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {service.key}"}
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
