"""`api_processes`: one port served by several processes, supervised by the first.

Which process holds a connection is read from /proc: the TCP sockets of the port that each
process has open."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from comfy_serverless.api import processes
from comfy_serverless.settings import Settings
from comfy_serverless.testing import LocalService, free_port

REDIS_URL = "redis://127.0.0.1:6379/0"
_ESTABLISHED = "01"


def _children(pid: int) -> set[int]:
    return {int(child) for child in
            Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:["):-1])
    return inodes


def _established_on(port: int) -> set[str]:
    """The inodes of established TCP connections whose local port is `port`."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == _ESTABLISHED:
                inodes.add(fields[9])
    return inodes


def _wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


@pytest.fixture
def two_process_api(tmp_path: Path) -> Iterator[LocalService]:
    env = {"REDIS_URL": REDIS_URL, "COMFY_SERVERLESS_API_PROCESSES": "2",
           "COMFY_SERVERLESS_EMBEDDED_WORKER": "false",
           "COMFY_SERVERLESS_WEBHOOK_DISPATCHER": "false"}
    with LocalService.start(tmp_path / "data", tmp_path / "no-engine", extra_env=env) as api:
        _wait_for(lambda: len(_children(api.process.pid)) == 2)
        yield api


async def _held_connections(api: LocalService, count: int) -> list[httpx.AsyncClient]:
    """`count` clients, each with one kept-alive connection that has answered a request."""
    clients = [httpx.AsyncClient(base_url=api.base_url, timeout=30) for _ in range(count)]
    answers = await asyncio.gather(*(client.get("/healthz") for client in clients))
    assert {answer.status_code for answer in answers} == {200}
    return clients


async def test_both_processes_accept_connections_on_the_one_port(
    two_process_api: LocalService,
) -> None:
    """Whichever process is free accepts: under load one may take a whole batch, so batches
    of held connections are opened until each process was seen holding some."""
    port = int(two_process_api.base_url.rsplit(":", 1)[1])
    children = _children(two_process_api.process.pid)
    seen_holding: set[int] = set()
    deadline = time.monotonic() + 60
    while seen_holding != children:
        assert time.monotonic() < deadline, f"only {seen_holding} of {children} accepted"
        clients = await _held_connections(two_process_api, 24)
        try:
            established = _established_on(port)
            held = {child: len(_socket_inodes(child) & established) for child in children}
            assert sum(held.values()) == 24, held
            seen_holding |= {child for child, count in held.items() if count > 0}
        finally:
            for client in clients:
                await client.aclose()


async def test_a_process_that_dies_is_started_again_and_the_port_keeps_answering(
    two_process_api: LocalService,
) -> None:
    parent = two_process_api.process.pid
    victim, survivor = sorted(_children(parent))
    os.kill(victim, signal.SIGKILL)
    _wait_for(lambda: len(_children(parent) - {victim}) == 2)
    assert survivor in _children(parent)
    async with httpx.AsyncClient(base_url=two_process_api.base_url, timeout=30) as client:
        answers = await asyncio.gather(*(client.get("/healthz") for _ in range(20)))
    assert {answer.status_code for answer in answers} == {200}


def test_more_than_one_process_without_redis_is_refused_at_start(tmp_path: Path) -> None:
    env = {**os.environ, "COMFY_SERVERLESS_API_PROCESSES": "2",
           "COMFY_SERVERLESS_EMBEDDED_WORKER": "false",
           "COMFY_SERVERLESS_DATA_DIR": str(tmp_path / "data")}
    env.pop("REDIS_URL", None)
    env.pop("COMFY_SERVERLESS_REDIS_URL", None)
    finished = subprocess.run([sys.executable, "-m", "comfy_serverless.cli", "serve"],
                              env=env, capture_output=True, text=True, timeout=60)
    assert finished.returncode == 2
    assert "api_processes > 1 needs redis_url" in finished.stderr


def test_processes_out_of_range_are_refused_at_start(tmp_path: Path) -> None:
    env = {**os.environ, "REDIS_URL": REDIS_URL, "COMFY_SERVERLESS_EMBEDDED_WORKER": "false",
           "COMFY_SERVERLESS_DATA_DIR": str(tmp_path / "data")}
    for count in ("0", "65"):
        finished = subprocess.run(
            [sys.executable, "-m", "comfy_serverless.cli", "serve", "--processes", count],
            env=env, capture_output=True, text=True, timeout=60)
        assert finished.returncode == 2
        assert "--processes must be between 1 and 64" in finished.stderr


def test_a_missing_warmup_file_is_refused_before_any_process_starts(tmp_path: Path) -> None:
    env = {**os.environ, "REDIS_URL": REDIS_URL, "COMFY_SERVERLESS_API_PROCESSES": "2",
           "COMFY_SERVERLESS_DATA_DIR": str(tmp_path / "data"),
           "COMFY_SERVERLESS_WARMUP_WORKFLOW": str(tmp_path / "absent.json")}
    finished = subprocess.run([sys.executable, "-m", "comfy_serverless.cli", "serve"],
                              env=env, capture_output=True, text=True, timeout=60)
    assert finished.returncode == 2
    assert "absent.json" in finished.stderr


async def test_every_process_answers_readyz_for_the_embedded_worker(tmp_path: Path) -> None:
    """The embedded worker's ComfyUI never answers (an attached URL nothing listens on):
    no process may say ready, not even those that run no worker themselves."""
    env = {"REDIS_URL": REDIS_URL, "COMFY_SERVERLESS_API_PROCESSES": "2",
           "COMFYUI_URL": f"http://127.0.0.1:{free_port()}",
           "COMFY_SERVERLESS_WEBHOOK_DISPATCHER": "false"}
    service = LocalService.launch(tmp_path / "data", tmp_path / "no-engine", extra_env=env)
    try:
        async with httpx.AsyncClient(base_url=service.base_url, timeout=10) as client:
            deadline = time.monotonic() + 60
            while not await _answers(client):
                assert time.monotonic() < deadline, service.log_tail()
                await asyncio.sleep(0.2)
        answers = []
        for _ in range(20):  # a new connection each: whichever process accepts answers
            async with httpx.AsyncClient(base_url=service.base_url, timeout=10) as client:
                answers.append(await client.get("/readyz"))
        assert {answer.status_code for answer in answers} == {503}
        assert {answer.json()["engine"] for answer in answers} == {"down"}
    finally:
        _stop_now(service)


def _stop_now(service: LocalService) -> None:
    """The first process is still starting (waiting for its ComfyUI), which uvicorn does
    not interrupt: after the parent has been told to stop, its processes are killed."""
    children = _children(service.process.pid)
    service.process.send_signal(signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        service.process.wait(2)
    for child in children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGKILL)
    service.stop()


async def _answers(client: httpx.AsyncClient) -> bool:
    try:
        return (await client.get("/healthz")).status_code == 200
    except httpx.HTTPError:
        return False


def test_the_supervisor_gives_up_on_a_process_that_keeps_failing_at_its_start(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(processes, "_FIRST_PAUSE", 0.01)

    def broken_app(settings: Settings, with_worker: bool) -> FastAPI:
        raise RuntimeError("a configuration error")

    settings = Settings(api_processes=2, port=free_port(), embedded_worker=False)
    started = time.monotonic()
    assert processes.serve_processes(settings, broken_app) == 1
    assert time.monotonic() - started < 30


def test_the_processes_end_when_their_supervisor_is_killed(
        two_process_api: LocalService) -> None:
    children = _children(two_process_api.process.pid)
    two_process_api.process.kill()
    two_process_api.process.wait()
    _wait_for(lambda: not any(Path(f"/proc/{child}").exists() and
                              "Z" not in _state_of(child) for child in children))


def _state_of(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"
