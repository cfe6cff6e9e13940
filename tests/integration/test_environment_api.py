"""Environments through the real app on real databases, with workers played by their store
rows (no worker runs, so submitted executions stay queued): the submit's `environment`
field, a queued job's `waiting_for`, and node packs that a worker publishes as verified
(its environment's install scanned them clean) counting for `require_verification`."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from comfy_serverless.api.app import create_app
from comfy_serverless.auth.keys import issue_key
from comfy_serverless.services import Services
from comfy_serverless.settings import Settings
from comfy_serverless.store.records import WorkerState
from comfy_serverless.store.workers import PublishedEnvironment
from tests.conftest import fresh_postgres_schema
from tests.helpers import assert_error
from workloads.workflows import inverted_image

EXECUTE = "/v1/workflows/execute"
FIXTURE = Path(__file__).parents[1] / "fixtures" / "object_info.json"
DIGEST = "3f2a9c" + "d" * 58
# The catalog refreshes its node packs with its hashes, at most every 5 s.
CATALOG_REFRESH_DEADLINE = 15.0


@pytest.fixture(params=["sqlite", "postgres"])
async def app_client(request: pytest.FixtureRequest, tmp_path: Path
                     ) -> AsyncIterator[tuple[Services, httpx.AsyncClient]]:
    async def run(database_url: str | None
                  ) -> AsyncIterator[tuple[Services, httpx.AsyncClient]]:
        settings = Settings(data_dir=tmp_path, embedded_worker=False, webhook_dispatcher=False,
                            database_url=database_url)
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            services: Services = app.state.services
            issued = issue_key("secret", "enterprise")
            await services.store.access.create_api_key(issued.record)
            async with httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app), base_url="http://test",
                    headers={"Authorization": f"Bearer {issued.plaintext}"}) as client:
                yield services, client

    if request.param == "sqlite":
        async for pair in run(None):
            yield pair
    else:
        async with fresh_postgres_schema() as url:
            async for pair in run(url):
                yield pair


def _catalog_with_a_custom_node() -> str:
    info: dict[str, Any] = json.loads(FIXTURE.read_text())
    info["FancyInvert"] = {**info["ImageInvert"], "name": "FancyInvert",
                           "python_module": "custom_nodes.fancy_pack.nodes"}
    return json.dumps(info, sort_keys=True)


async def _worker(services: Services, worker_id: str, environment: PublishedEnvironment, *,
                  state: str = "idle") -> None:
    """A worker that publishes `environment`; in state "stopped", one that has since left."""
    await services.store.workers.heartbeat_worker(WorkerState(worker_id, state, "cpu", None,
                                                              None))
    await services.store.workers.publish_catalog(worker_id, _catalog_with_a_custom_node(),
                                                 environment)


async def test_a_malformed_environment_is_a_400_in_the_spec_shape(
        app_client: tuple[Services, httpx.AsyncClient]) -> None:
    _, api = app_client
    for malformed in ("sdxl tools", "sdxl@xyz123", "-x", "a" * 65, 7):
        answer = await api.post(EXECUTE, json={"workflow": inverted_image(1),
                                               "environment": malformed})
        body = assert_error(answer, 400, "INVALID_REQUEST")
        [problem] = body["details"]["validation_errors"]
        assert problem["field"] == "body.environment", body


async def test_an_environment_no_worker_ever_published_is_a_400(
        app_client: tuple[Services, httpx.AsyncClient]) -> None:
    services, api = app_client
    await _worker(services, "w-sdxl", PublishedEnvironment("sdxl-tools", DIGEST))
    for asked, message in (
            ("video", "no worker has ever published environment 'video'"),
            ("sdxl-tools@abcdef", "no worker has ever published environment 'sdxl-tools' at "
                                  "a hash starting with abcdef")):
        answer = await api.post(EXECUTE, json={"workflow": inverted_image(6),
                                               "environment": asked})
        body = assert_error(answer, 400, "INVALID_REQUEST")
        assert body["message"] == message
        assert body["details"] == {"field": "environment", "environment": asked}
    queue = (await api.get("/v1/queue/status")).json()
    assert queue["queue_status"]["total_queued"] == 0, "nothing was queued"


async def test_a_job_for_an_environment_no_live_worker_has_says_why_it_waits(
        app_client: tuple[Services, httpx.AsyncClient]) -> None:
    """Known (a worker published it once) but run by no live worker: a fleet scaled to zero
    may start one, so the job is accepted and waits, its status saying why."""
    services, api = app_client
    await _worker(services, "w-sdxl", PublishedEnvironment("sdxl-tools", DIGEST))
    await _worker(services, "w-gone", PublishedEnvironment("video", "abcdef" + "9" * 58),
                  state="stopped")
    answer = await api.post(EXECUTE, json={"workflow": inverted_image(2),
                                           "environment": "video@ABCDEF"})
    assert answer.status_code == 202, answer.text
    assert answer.json()["warnings"] == [
        "No live worker has environment 'video@abcdef'; it stays queued until one does"]
    execution_id = answer.json()["execution_id"]
    status = (await api.get(f"/v1/workflows/{execution_id}/status")).json()
    assert status["status"] == "queued"
    assert status["waiting_for"] == {
        "code": "NO_WORKER_WITH_ENVIRONMENT", "environment": "video@abcdef", "live_workers": 1,
        "message": "No live worker has environment 'video@abcdef'; it stays queued until "
                   "one does"}
    await _worker(services, "w-video", PublishedEnvironment("video", "abcdef" + "0" * 58))
    status = (await api.get(f"/v1/workflows/{execution_id}/status")).json()
    assert "waiting_for" not in status
    await api.delete(f"/v1/workflows/{execution_id}/cancel")
    assert "waiting_for" not in (await api.get(f"/v1/workflows/{execution_id}/status")).json()


async def test_a_job_that_asks_for_no_environment_has_no_note(
        app_client: tuple[Services, httpx.AsyncClient]) -> None:
    services, api = app_client
    await _worker(services, "w-sdxl", PublishedEnvironment("sdxl-tools", DIGEST))
    answer = await api.post(EXECUTE, json={"workflow": inverted_image(3)})
    assert "warnings" not in answer.json()
    mine = await api.post(EXECUTE, json={"workflow": inverted_image(5),
                                         "environment": "sdxl-tools"})
    assert "warnings" not in mine.json()
    status = (await api.get(f"/v1/workflows/{answer.json()['execution_id']}/status")).json()
    assert status["status"] == "queued"
    assert "waiting_for" not in status


async def _submit_until(api: httpx.AsyncClient, workflow: dict[str, Any], status: int
                        ) -> httpx.Response:
    """Submit until the answer has `status` (the API's catalog refreshes every few s)."""
    deadline = time.monotonic() + CATALOG_REFRESH_DEADLINE
    while True:
        answer = await api.post(EXECUTE, json={"workflow": workflow})
        if answer.status_code == status or time.monotonic() > deadline:
            return answer
        await asyncio.sleep(0.5)


async def test_node_packs_a_worker_publishes_as_verified_pass_validation(
        app_client: tuple[Services, httpx.AsyncClient]) -> None:
    services, api = app_client
    workflow = inverted_image(4)
    workflow["2"]["class_type"] = "FancyInvert"
    await _worker(services, "w1", PublishedEnvironment("sdxl-tools", DIGEST,
                                                       flagged_packs=("fancy_pack",)))
    refused = assert_error(await _submit_until(api, workflow, 422), 422,
                           "WORKFLOW_NOT_RUNNABLE")
    assert "unverified node pack 'fancy_pack'" in json.dumps(refused)
    await _worker(services, "w1", PublishedEnvironment("sdxl-tools", DIGEST,
                                                       verified_packs=("fancy_pack",)))
    accepted = await _submit_until(api, workflow, 202)
    assert accepted.status_code == 202, accepted.text
