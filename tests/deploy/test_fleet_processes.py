"""Issue #16, item 5, with real processes on PostgreSQL: two API processes and a worker with
separate local data folders, as a new user following the README would start them; then the
same fleet on S3, whose job's output downloads through either API."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from comfy_serverless.testing import LocalService
from comfy_serverless.testing_s3 import S3Server
from tests.conftest import fresh_postgres_schema
from tests.helpers import submit, wait_for, wait_until_finished
from workloads.workflows import inverted_image

pytestmark = pytest.mark.comfyui

REFUSAL = "This process refuses to start"


@pytest.fixture
async def database() -> AsyncIterator[str]:
    async with fresh_postgres_schema() as url:
        yield url


def api_env(database: str, **extra: str) -> dict[str, str]:
    return {"DATABASE_URL": database, "COMFY_SERVERLESS_EMBEDDED_WORKER": "false", **extra}


def start_worker(env: dict[str, str], data_dir: Path) -> subprocess.Popen[bytes]:
    data_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **env, "COMFY_SERVERLESS_DATA_DIR": str(data_dir)}
    with (data_dir / "worker.log").open("ab") as log:
        return subprocess.Popen([sys.executable, "-m", "comfy_serverless.cli", "worker"],
                                env=env, stdout=log, stderr=log)


def exit_code(process: subprocess.Popen[bytes], timeout: float = 60) -> int:
    return process.wait(timeout)


def test_separate_local_folders_make_the_second_api_and_the_worker_refuse_to_start(
        database: str, tmp_path: Path) -> None:
    env = api_env(database)
    with LocalService.start(tmp_path / "api-1", tmp_path / "no-engine", extra_env=env):
        second = LocalService.launch(tmp_path / "api-2", tmp_path / "no-engine", extra_env=env)
        try:
            assert exit_code(second.process) != 0
        finally:
            second.stop()
        assert REFUSAL in second.log_tail()
        assert "COMFY_SERVERLESS_S3_ENABLED" in second.log_tail()
        worker = start_worker({"DATABASE_URL": database}, tmp_path / "worker")
        assert exit_code(worker) != 0
        log = (tmp_path / "worker" / "worker.log").read_text()
        assert REFUSAL in log
        assert "its output storage" in log
        assert "its signing secret differs" in log


@pytest.fixture
def s3_fleet(database: str, tmp_path: Path, s3_server: S3Server, service: LocalService
             ) -> Iterator[tuple[list[LocalService], subprocess.Popen[bytes]]]:
    s3_server.create_bucket("fleet-outputs")
    env = api_env(database, COMFY_SERVERLESS_SIGNING_SECRET="one-fleet-" + "s" * 40,
                  COMFY_SERVERLESS_HEARTBEAT_INTERVAL="1",
                  COMFY_SERVERLESS_OUTPUTS_ON_S3_ONLY="true",
                  **s3_server.env("fleet-outputs"))
    with LocalService.start(tmp_path / "api-1", tmp_path / "no-engine", extra_env=env) as one, \
            LocalService.start(tmp_path / "api-2", tmp_path / "no-engine", extra_env=env) as two:
        worker = start_worker({**env, "COMFYUI_URL": service.comfyui_url,
                               "COMFY_SERVERLESS_WORKER_ID": "fleet-worker"}, tmp_path / "w")
        try:
            yield [one, two], worker
        finally:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
                worker.wait(60)


async def test_on_s3_the_same_fleet_serves_the_output_from_either_api(
        s3_fleet: tuple[list[LocalService], subprocess.Popen[bytes]], tmp_path: Path) -> None:
    apis, worker = s3_fleet
    key = apis[0].new_unthrottled_key()
    headers = {"Authorization": f"Bearer {key}"}
    clients = [httpx.AsyncClient(base_url=api.base_url, headers=headers, timeout=30)
               for api in apis]
    try:
        execution_id = await submit(clients[0], inverted_image(0x336699))
        assert (await wait_until_finished(clients[1], execution_id))["status"] == "completed"
        for client in clients:
            results = (await client.get(f"/v1/workflows/{execution_id}/results")).json()
            [output] = results["results"]["outputs"]
            assert output["storage"]["provider"] == "s3"
            download = await client.get(output["storage"]["url"])
            assert download.status_code == 200, (output, download.text[:300])
            assert download.content.startswith(b"\x89PNG")
    finally:
        for client in clients:
            await client.aclose()
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(60) == 0

    async def drain_logged() -> bool:
        return "fleet-worker stopping: no job running" in (tmp_path / "w" / "worker.log"
                                                           ).read_text()

    await wait_for(drain_logged, timeout=5, what="the worker's drain line")
