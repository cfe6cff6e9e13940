"""`api_processes`: one port served by several processes, supervised by the first.

Which process holds a connection is read from /proc: the TCP sockets of the port that each
process has open."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from comfy_serverless.testing import LocalService

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
