"""Chaos: 3 worker processes and 2 API processes on PostgreSQL run 200 executions while a
random worker is killed with SIGKILL every couple of seconds (and a new one started).

Each worker drives its own protocol-faithful fake ComfyUI (in this process), so the test
measures the queue, not diffusion. Every execution must end completed, or failed with its
retries spent and a reason; none may be lost, none may complete twice.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from comfy_serverless.engine.comfyui.installer import EngineLayout
from comfy_serverless.store.store import Store
from comfy_serverless.testing import LocalService, free_port
from tests.conftest import fresh_postgres_schema
from tests.fakes.comfyui import FakeComfyUI, running_fake
from tests.helpers import wait_for
from workloads.workflows import tiny_sd15

EXECUTIONS = 200
WORKERS = 3
KILL_EVERY = 1.5
DEADLINE = 240.0
_FAST_QUEUE = {
    "COMFY_SERVERLESS_LEASE_SECONDS": "2",
    "COMFY_SERVERLESS_HEARTBEAT_INTERVAL": "0.5",
    "COMFY_SERVERLESS_RESCUE_INTERVAL": "0.5",
    "COMFY_SERVERLESS_POLL_INTERVAL": "0.2",
    "COMFY_SERVERLESS_EMBEDDED_WORKER": "false",
}


@pytest.fixture
async def database() -> AsyncIterator[str]:
    async with fresh_postgres_schema() as url:
        yield url


@pytest.fixture
async def fakes(tmp_path: Path) -> AsyncIterator[list[tuple[str, FakeComfyUI]]]:
    async with contextlib.AsyncExitStack() as stack:
        started = []
        for index in range(WORKERS):
            port, folder = free_port(), tmp_path / f"fake-{index}"
            folder.mkdir()
            fake = await stack.enter_async_context(running_fake(folder, port))
            fake.faults.steps, fake.faults.step_seconds = 8, 0.03
            started.append((f"http://127.0.0.1:{port}", fake))
        yield started


@pytest.fixture
def apis(database: str, engine_layout: EngineLayout, tmp_path: Path
         ) -> Iterator[list[LocalService]]:
    env = {"DATABASE_URL": database, **_FAST_QUEUE}
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(LocalService.start(tmp_path / "data", engine_layout.root,
                                                      extra_env=env)) for _ in range(2)]


class WorkerPool:
    """Worker processes, one per fake ComfyUI; killed and replaced at random."""

    def __init__(self, env: dict[str, str], comfyui_urls: list[str], log_dir: Path) -> None:
        self._env = env
        self._urls = comfyui_urls
        self._log_dir = log_dir
        self._serial = itertools.count(1)
        self.processes: dict[int, subprocess.Popen[bytes]] = {}
        self.kills = 0

    def start_all(self) -> None:
        for slot in range(len(self._urls)):
            self._spawn(slot)

    def _spawn(self, slot: int) -> None:
        worker_id = f"chaos-{slot}-{next(self._serial)}"
        env = {**self._env, "COMFYUI_URL": self._urls[slot],
               "COMFY_SERVERLESS_WORKER_ID": worker_id}
        with (self._log_dir / f"{worker_id}.log").open("ab") as log:
            self.processes[slot] = subprocess.Popen(
                [sys.executable, "-m", "comfy_serverless.cli", "worker"],
                env=env, stdout=log, stderr=log)

    def kill_one(self, rng: random.Random) -> None:
        slot = rng.randrange(len(self.processes))
        os.kill(self.processes[slot].pid, signal.SIGKILL)
        self.processes[slot].wait()
        self.kills += 1
        self._spawn(slot)

    def stop_all(self) -> None:
        for process in self.processes.values():
            process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


async def _submit_all(apis: list[LocalService], keys: list[str]) -> list[str]:
    ids = []
    clients = [httpx.AsyncClient(base_url=api.base_url, timeout=30,
                                 headers={"Authorization": f"Bearer {key}"})
               for api, key in zip(apis, keys, strict=True)]
    try:
        for index in range(EXECUTIONS):
            body = {"workflow": tiny_sd15(index), "execution_config": {"retry_attempts": 5}}
            response = await clients[index % 2].post("/v1/workflows/execute", json=body)
            assert response.status_code == 202, response.text
            ids.append(response.json()["execution_id"])
    finally:
        for client in clients:
            await client.aclose()
    return ids


async def _finished(store: Store, ids: list[str]) -> dict[str, Any]:
    records = {execution_id: await store.executions.execution(execution_id) for execution_id in ids}
    return {i: r for i, r in records.items() if r is not None and r.is_finished}


async def test_nothing_is_lost_when_workers_are_killed(
    database: str, apis: list[LocalService], fakes: list[tuple[str, FakeComfyUI]],
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    keys = [api.new_unthrottled_key() for api in apis]
    store = await Store.open(database)
    pool = WorkerPool({**apis[0].env}, [url for url, _ in fakes], tmp_path)
    pool.start_all()
    rng = random.Random(7)
    started = time.monotonic()
    try:
        ids = await _submit_all(apis, keys)
        next_kill = time.monotonic() + KILL_EVERY

        async def all_finished_killing_meanwhile() -> dict[str, Any] | None:
            nonlocal next_kill
            finished = await _finished(store, ids)
            if len(finished) == len(ids):
                return finished
            if time.monotonic() >= next_kill and len(finished) < len(ids) * 0.9:
                pool.kill_one(rng)
                next_kill = time.monotonic() + KILL_EVERY
            return None

        finished = await wait_for(all_finished_killing_meanwhile, timeout=DEADLINE,
                                  interval=0.2, what=f"all {len(ids)} executions to finish")
        elapsed = time.monotonic() - started
        events = {execution_id: await store.executions.events(execution_id) for execution_id in ids}
        completions = {execution_id: sum(e.event == "execution_completed" for e in log)
                       for execution_id, log in events.items()}
        rescued = sum(e.event == "execution_rescued" for log in events.values() for e in log)
        outcomes = Counter(record.status for record in finished.values())
        attempts = Counter(record.attempt for record in finished.values())
        outputs = {execution_id: len(await store.executions.outputs(execution_id))
                   for execution_id in ids}
    finally:
        pool.stop_all()
        await store.close()
    with capsys.disabled():
        print(f"\nchaos: {EXECUTIONS} executions, {WORKERS} workers, 2 APIs, PostgreSQL; "
              f"{pool.kills} workers killed with SIGKILL; done in {elapsed:.1f}s")
        print(f"  outcomes {dict(outcomes)}; attempts {dict(sorted(attempts.items()))}; "
              f"leases rescued {rescued}")
    assert pool.kills >= 3
    assert set(outcomes) <= {"completed", "failed"}
    for record in finished.values():
        if record.status == "completed":
            assert completions[record.id] == 1, f"{record.id} completed twice"
            assert outputs[record.id] == 1, f"{record.id} has {outputs[record.id]} outputs"
        else:
            assert record.error is not None
            assert record.error["retry_info"]["remaining_retries"] == 0
            assert record.error["message"]
    assert all(count <= 1 for count in completions.values())


async def test_a_cancel_through_another_replica_reaches_the_worker_within_a_second(
    apis: list[LocalService], fakes: list[tuple[str, FakeComfyUI]], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url, fake = fakes[0]
    fake.faults.steps, fake.faults.step_seconds = 1000, 0.01
    pool = WorkerPool({**apis[0].env}, [url], tmp_path)
    pool.start_all()
    key_a = apis[0].new_unthrottled_key()
    try:
        async with httpx.AsyncClient(base_url=apis[0].base_url, timeout=30,
                                     headers={"Authorization": f"Bearer {key_a}"}) as api_a, \
                httpx.AsyncClient(base_url=apis[1].base_url, timeout=30,
                                  headers={"Authorization": f"Bearer {key_a}"}) as api_b:
            accepted = await api_a.post("/v1/workflows/execute",
                                        json={"workflow": tiny_sd15(1)})
            execution_id = accepted.json()["execution_id"]

            async def sampling() -> bool:
                status = (await api_b.get(f"/v1/workflows/{execution_id}/status")).json()
                return bool(status["current_step"])

            await wait_for(sampling, timeout=60, what="the job to be sampling")
            started = time.monotonic()
            cancelled = await api_b.delete(f"/v1/workflows/{execution_id}/cancel")
            assert cancelled.status_code == 200

            async def interrupted() -> bool:
                return bool(fake.interrupted)

            await wait_for(interrupted, timeout=5, interval=0.01, what="ComfyUI's interrupt")
            reached = time.monotonic() - started
    finally:
        pool.stop_all()
    with capsys.disabled():
        print(f"\ncancel through API replica B reached the worker of API A's job in "
              f"{reached * 1000:.0f} ms")
    assert reached < 1.0, f"the cancel took {reached:.3f}s to reach the worker"
