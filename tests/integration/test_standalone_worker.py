"""The fleet shape: an API-only process and a standalone worker sharing PostgreSQL, the
worker attached to a ComfyUI it does not own (COMFYUI_URL)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from comfy_serverless.engine.comfyui.installer import EngineLayout
from comfy_serverless.testing import LocalService
from tests.conftest import fresh_postgres_schema
from tests.helpers import wait_until_finished
from workloads.workflows import inverted_image

pytestmark = pytest.mark.comfyui


@pytest.fixture
async def postgres_database() -> AsyncIterator[str]:
    async with fresh_postgres_schema() as url:
        yield url


@pytest.fixture
def api_only(postgres_database: str, engine_layout: EngineLayout, tmp_path: Path
             ) -> Iterator[LocalService]:
    env = {"DATABASE_URL": postgres_database, "COMFY_SERVERLESS_EMBEDDED_WORKER": "false"}
    with LocalService.start(tmp_path / "data", engine_layout.root, extra_env=env) as running:
        yield running


@pytest.fixture
def standalone_worker(api_only: LocalService, service: LocalService) -> Iterator[None]:
    env = {**api_only.env, "COMFYUI_URL": service.comfyui_url,
           "COMFY_SERVERLESS_WORKER_ID": "standalone-1"}
    with (api_only.data_dir / "worker.log").open("ab") as log:
        worker = subprocess.Popen([sys.executable, "-m", "comfy_serverless.cli", "worker"],
                                  env=env, stdout=log, stderr=log)
    try:
        yield
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)
        assert worker.returncode == 0, (api_only.data_dir / "worker.log").read_text()[-2000:]


@pytest.mark.usefixtures("standalone_worker")
async def test_a_standalone_worker_runs_jobs_queued_by_the_api(
    api_only: LocalService, service: LocalService
) -> None:
    key = api_only.new_unthrottled_key()
    async with httpx.AsyncClient(base_url=api_only.base_url, timeout=30,
                                 headers={"Authorization": f"Bearer {key}"}) as api:
        accepted = await api.post("/v1/workflows/execute",
                                  json={"workflow": inverted_image(random.randrange(1 << 24))})
        assert accepted.status_code == 202
        execution_id = accepted.json()["execution_id"]
        final = await wait_until_finished(api, execution_id, timeout=60)
        assert final["status"] == "completed", final
        assert final["resource_allocation"]["gpu_id"] == "standalone-1"
        results = (await api.get(f"/v1/workflows/{execution_id}/results",
                                 params={"wait": 5})).json()
        [output] = results["results"]["outputs"]
        download = await api.get(output["storage"]["url"])
        assert download.status_code == 200
        assert len(download.content) == output["file_info"]["size_bytes"]
    assert service.comfyui_pid() is not None, "an attached worker never stops the ComfyUI"
    assert os.path.exists(api_only.data_dir / "storage" / "outputs" / execution_id)
