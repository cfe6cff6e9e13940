"""The store goes away under load: a private PostgreSQL restarts while submits flow.

Every answer meanwhile is a 202 or a `503 STORE_UNAVAILABLE` with Retry-After, never a 500,
and every execution that was accepted completes (issue #12, item 18). The cluster is this
test's own (initdb and pg_ctl on a free loopback port, in a folder of its own, run as the
`postgres` user when the tests run as root), so stopping it disturbs no one else.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from comfy_serverless.engine.comfyui.installer import EngineLayout
from comfy_serverless.testing import LocalService, free_port
from tests.helpers import wait_for, wait_until_finished
from workloads.workflows import inverted_image

EXECUTE = "/v1/workflows/execute"
# The load: one submit every PACE seconds (about 10 a second, as in the field report).
PACE = 0.1
OUTAGE_SUBMITS = 30


@dataclass(frozen=True)
class PrivateCluster:
    bin_dir: Path
    folder: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def run(self, tool: str, *args: str) -> None:
        as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run([*as_postgres, str(self.bin_dir / tool), *args], check=True,
                       capture_output=True, timeout=120)

    def start(self) -> None:
        self.run("pg_ctl", "-D", str(self.folder / "data"), "-l", str(self.folder / "log"),
                 "-o", f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.folder}",
                 "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self.run("pg_ctl", "-D", str(self.folder / "data"), "-m", mode, "-w", "stop")

    def is_running(self) -> bool:
        return (self.folder / "data" / "postmaster.pid").exists()


@contextlib.contextmanager
def private_postgres() -> Iterator[PrivateCluster]:
    [bin_dir, *_] = sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    folder = Path(tempfile.mkdtemp(prefix="comfy-serverless-pg-"))
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    cluster = PrivateCluster(Path(bin_dir), folder, free_port())
    try:
        cluster.run("initdb", "-D", str(folder / "data"), "-A", "trust", "-U", "postgres",
                    "--no-sync")
        cluster.start()
        yield cluster
    finally:
        if cluster.is_running():
            cluster.stop("immediate")
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def postgres_service(engine_layout: EngineLayout, tmp_path_factory: pytest.TempPathFactory
                     ) -> Iterator[tuple[PrivateCluster, LocalService]]:
    with private_postgres() as cluster, LocalService.start(
            tmp_path_factory.mktemp("outage-service"), engine_layout.root,
            extra_env={"COMFY_SERVERLESS_DATABASE_URL": cluster.url,
                       "COMFY_SERVERLESS_HEARTBEAT_INTERVAL": "1"}) as service:
        yield cluster, service


class SubmitLoad:
    """Submits a new workflow every PACE seconds until stopped; keeps every answer."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.answers: list[httpx.Response] = []
        self._stop = asyncio.Event()

    def count(self, accepted: bool, since: int = 0) -> int:
        """Answers since the `since`-th that were 202s (accepted) or anything else."""
        return sum((answer.status_code == 202) == accepted for answer in self.answers[since:])

    async def run(self) -> None:
        color = 0
        while not self._stop.is_set():
            color += 1
            self.answers.append(await self.client.post(EXECUTE, json={
                "workflow": inverted_image(color % 256, size=8 + color // 256)}))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), PACE)

    def stop(self) -> None:
        self._stop.set()


async def test_a_postgresql_restart_answers_503_and_loses_nothing(
    postgres_service: tuple[PrivateCluster, LocalService],
) -> None:
    cluster, service = postgres_service
    key = service.new_unthrottled_key()
    async with httpx.AsyncClient(base_url=service.base_url, timeout=60,
                                 headers={"Authorization": f"Bearer {key}"}) as client:
        load = SubmitLoad(client)
        running = asyncio.create_task(load.run())
        await _counted(load, True, 5, "submits before the restart")
        await asyncio.to_thread(cluster.stop)
        # About 3 s of outage at the load's pace, as in the field report.
        await _counted(load, False, OUTAGE_SUBMITS, "submits refused while PostgreSQL is down")
        await asyncio.to_thread(cluster.start)
        await _counted(load, True, 5, "submits after the restart", since=len(load.answers))
        load.stop()
        await running
        assert {answer.status_code for answer in load.answers} <= {202, 503}, [
            (answer.status_code, answer.text) for answer in load.answers
            if answer.status_code not in (202, 503)]
        for refused in (answer for answer in load.answers if answer.status_code == 503):
            assert refused.json()["error_code"] == "STORE_UNAVAILABLE"
            assert int(refused.headers["Retry-After"]) >= 1
        for accepted in (answer for answer in load.answers if answer.status_code == 202):
            finished = await wait_until_finished(client, accepted.json()["execution_id"])
            assert finished["status"] == "completed", finished


async def _counted(load: SubmitLoad, accepted: bool, count: int, what: str, since: int = 0
                   ) -> None:
    async def enough() -> bool:
        return load.count(accepted, since) >= count

    await wait_for(enough, timeout=120, what=what)
