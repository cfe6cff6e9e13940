"""Routing by environment on a real ComfyUI on the CPU: a service whose worker has an
installed environment (its record written where COMFY_SERVERLESS_ENVIRONMENT_DIR points)
claims and runs jobs that ask for that environment (by name, or name@hash prefix) and jobs
that ask for none, while a job that asks for an environment no live worker has (one that a
worker now gone published, or the name at another hash) stays queued, its status saying
why, until it is cancelled."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from comfy_serverless.engine.comfyui.installer import EngineLayout
from comfy_serverless.environments.record import InstalledEnvironment, write_installed
from comfy_serverless.settings import Settings
from comfy_serverless.store.records import WorkerState
from comfy_serverless.store.store import Store
from comfy_serverless.store.workers import PublishedEnvironment
from comfy_serverless.testing import LocalService
from tests.helpers import status_of, submit, wait_until_finished
from workloads.workflows import inverted_image

pytestmark = pytest.mark.comfyui

DIGEST = "5e7a11" + "c" * 58
OLD_DIGEST = "0a1b2c" + "e" * 58


@pytest.fixture(scope="module")
def environment_service(engine_layout: EngineLayout,
                        tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalService]:
    data_dir = tmp_path_factory.mktemp("environment-service")
    environment_dir = tmp_path_factory.mktemp("environment")
    write_installed(environment_dir, InstalledEnvironment("sdxl-tools", DIGEST))
    env = {"COMFY_SERVERLESS_HEARTBEAT_INTERVAL": "1",
           "COMFY_SERVERLESS_POLL_INTERVAL": "0.2",
           "COMFY_SERVERLESS_ENVIRONMENT_DIR": str(environment_dir)}
    with LocalService.start(data_dir, engine_layout.root, extra_env=env) as running:
        yield running


@pytest.fixture
async def environment_api(environment_service: LocalService
                          ) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {environment_service.new_unthrottled_key()}"}
    async with httpx.AsyncClient(base_url=environment_service.base_url, headers=headers,
                                 timeout=60) as client:
        yield client


async def _a_worker_that_has_left(service: LocalService) -> None:
    """A worker that once ran `video`, and `sdxl-tools` at another hash, and has stopped:
    both are environments the fleet knows, though no live worker runs them."""
    store = await Store.open(Settings(data_dir=service.data_dir).resolved_database_url())
    try:
        for environment in (PublishedEnvironment("video", "77aa00" + "d" * 58),
                            PublishedEnvironment("sdxl-tools", OLD_DIGEST)):
            await store.workers.heartbeat_worker(WorkerState("w-gone", "stopped", "cpu", None,
                                                             None))
            await store.workers.publish_catalog("w-gone", "{}", environment)
    finally:
        await store.close()


async def test_jobs_go_to_the_worker_with_their_environment_and_others_wait(
        environment_service: LocalService, environment_api: httpx.AsyncClient) -> None:
    api = environment_api
    await _a_worker_that_has_left(environment_service)
    # Submitted first: in claim order, every later claim meets these before the others.
    unknown = await submit(api, inverted_image(11), environment="video")
    other_hash = await submit(api, inverted_image(12),
                              environment=f"sdxl-tools@{OLD_DIGEST[:6]}")
    runnable = [await submit(api, inverted_image(13), environment="sdxl-tools"),
                await submit(api, inverted_image(14), environment=f"sdxl-tools@{DIGEST[:8]}"),
                await submit(api, inverted_image(15))]
    for execution_id in runnable:
        finished = await wait_until_finished(api, execution_id)
        assert finished["status"] == "completed", finished
    # Three claims passed over the two older jobs; one more, submitted now, proves a fourth.
    later = await submit(api, inverted_image(16))
    assert (await wait_until_finished(api, later))["status"] == "completed"

    waiting = await status_of(api, unknown)
    assert (waiting["status"], waiting["attempt"], waiting["started_at"]) == ("queued", 0, None)
    assert waiting["waiting_for"]["code"] == "NO_WORKER_WITH_ENVIRONMENT"
    assert waiting["waiting_for"]["environment"] == "video"
    assert waiting["waiting_for"]["live_workers"] == 1, "the stopped worker is not live"
    assert "No live worker has environment 'video'" in waiting["waiting_for"]["message"]

    pinned = await status_of(api, other_hash)
    assert pinned["status"] == "queued"
    assert f"at hash {DIGEST[:12]}" in pinned["waiting_for"]["message"]

    for execution_id in (unknown, other_hash):
        cancelled = await api.delete(f"/v1/workflows/{execution_id}/cancel")
        assert cancelled.json()["status"] == "cancelled", cancelled.text
        assert "waiting_for" not in await status_of(api, execution_id)

    never = await api.post("/v1/workflows/execute", json={"workflow": inverted_image(17),
                                                          "environment": "never-published"})
    assert never.status_code == 400, never.text
    assert never.json()["details"]["field"] == "environment"
