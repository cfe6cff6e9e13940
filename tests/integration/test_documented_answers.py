"""Every route's real answers, success and error, fit what the OpenAPI document declares
for their status (no ComfyUI: executions are finished through the store)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from comfy_serverless.api.app import create_app
from comfy_serverless.auth.keys import issue_key
from comfy_serverless.executions.submission import new_execution_id
from comfy_serverless.services import Services
from comfy_serverless.settings import Settings
from comfy_serverless.store.options import ExecutionOptions
from comfy_serverless.store.records import NewExecution, OutputRecord, ProgressSnapshot
from tests.openapi_check import assert_documented
from workloads.workflows import inverted_image

STATUS = "/v1/workflows/{execution_id}/status"
RESULTS = "/v1/workflows/{execution_id}/results"
CANCEL = "/v1/workflows/{execution_id}/cancel"
EVENTS = "/v1/workflows/{execution_id}/events"


class Api:
    """An admin-keyed client that checks each answer against the document."""

    def __init__(self, client: httpx.AsyncClient, document: dict[str, Any],
                 services: Services) -> None:
        self.client = client
        self.document = document
        self.services = services

    async def call(self, method: str, path: str, *, expect: int, url: str | None = None,
                   **kwargs: Any) -> httpx.Response:
        response = await self.client.request(method, url or path, **kwargs)
        assert response.status_code == expect, (method, path, response.text)
        assert_documented(self.document, response, path)
        return response


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    settings = Settings(data_dir=tmp_path, embedded_worker=False, webhook_dispatcher=False)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        services: Services = app.state.services
        admin = issue_key("secret", "enterprise", is_admin=True)
        await services.store.access.create_api_key(admin.record)
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(
                transport=transport, base_url="http://test",
                headers={"Authorization": f"Bearer {admin.plaintext}"}) as client:
            yield Api(client, app.openapi(), services)


async def _completed_with_an_output(api: Api) -> str:
    """An execution finished through the store, with one stored output file."""
    store, key_id = api.services.store, (await api.services.store.access.keys())[0].id
    execution_id = new_execution_id()
    await store.executions.create_execution(NewExecution(
        id=execution_id, api_key_id=key_id, priority=5, workflow=inverted_image(1),
        options=ExecutionOptions(), signature="s", webhook_url=None, client_id=None,
        submitted_at=time.time() - 2, max_attempts=1, total_nodes=3))
    claimed = await store.claims.claim_next("w1", 30)
    assert claimed is not None
    storage_key = f"outputs/{execution_id}/out.png"
    path = api.services.local_storage.path_for(storage_key)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG fake")
    output = OutputRecord(
        id=f"out_{execution_id}", execution_id=execution_id, node_id="9", output_type="IMAGE",
        intermediate=False, filename="out.png", content_type="image/png", size_bytes=9,
        width=2, height=2, format="PNG", storage_provider="local", storage_bucket=None,
        storage_key=storage_key, created_at=time.time())
    assert await store.claims.complete(claimed.lease, [output],
                                       ProgressSnapshot(1, None, None, None, None, 3), gpu_time=1.0)
    return execution_id


async def test_a_finished_execution_answers_as_documented(api: Api) -> None:
    execution_id = await _completed_with_an_output(api)
    url = f"/v1/workflows/{execution_id}"
    await api.call("GET", STATUS, url=f"{url}/status", expect=200)
    inline = await api.call("GET", RESULTS, url=f"{url}/results", expect=200, params={
        "include_metadata": "true", "download_format": "base64"})
    signed = await api.call("GET", RESULTS, url=f"{url}/results", expect=200)
    assert inline.json()["results"]["outputs"][0]["encoding"] == "base64"
    file_url = signed.json()["results"]["outputs"][0]["storage"]["url"]
    await api.call("GET", "/files/{key}", url=file_url.removeprefix("http://test"), expect=200)
    await api.call("DELETE", CANCEL, url=f"{url}/cancel", expect=409)
    stream = await api.call("GET", EVENTS, url=f"{url}/events", expect=200)
    last = max(int(line[4:]) for line in stream.text.splitlines() if line.startswith("id: "))
    await api.call("GET", EVENTS, url=f"{url}/events", expect=204,
                   headers={"Last-Event-ID": str(last)})
    await api.call("GET", "/v1/workflows/{execution_id}/webhooks", url=f"{url}/webhooks",
                   expect=200)


async def test_a_submitted_then_cancelled_execution_answers_as_documented(api: Api) -> None:
    body = {"workflow": inverted_image(1)}
    await api.call("POST", "/v1/workflows/convert", expect=200, json=body)
    accepted = await api.call("POST", "/v1/workflows/execute", expect=202, json=body)
    url = f"/v1/workflows/{accepted.json()['execution_id']}"
    await api.call("GET", STATUS, url=f"{url}/status", expect=200)
    await api.call("GET", RESULTS, url=f"{url}/results", expect=202)
    await api.call("DELETE", CANCEL, url=f"{url}/cancel", expect=200)
    await api.call("GET", RESULTS, url=f"{url}/results", expect=409)
    await api.call("GET", STATUS, url="/v1/workflows/exec_missing/status", expect=404)
    await api.call("POST", "/v1/workflows/execute", expect=400, json={"workflow": 1})


async def test_the_service_routes_answer_as_documented(api: Api) -> None:
    for path in ("/healthz", "/readyz", "/errors", "/metrics", "/v1/queue/status",
                 "/v1/models/list"):
        await api.call("GET", path, expect=200)
    await api.call("GET", "/errors/{code}", url="/errors/NOT_FOUND", expect=200)
    await api.call("POST", "/v1/models/preload", expect=404, json={
        "models": [{"model_id": "checkpoint/none"}]})
    await api.call("POST", "/v1/admin/maintenance", expect=202, json={"message": "soon"})


async def test_webhook_endpoints_answer_as_documented(api: Api) -> None:
    created = await api.call("POST", "/v1/webhooks", expect=201, json={
        "url": "https://93.184.215.14/hooks", "events": ["model.updated"], "secret": "s"})
    await api.call("GET", "/v1/webhooks", expect=200)
    one = "/v1/webhooks/{endpoint_id}"
    await api.call("DELETE", one, url=f"/v1/webhooks/{created.json()['id']}", expect=200)
    await api.call("DELETE", one, url=f"/v1/webhooks/{created.json()['id']}", expect=404)


async def test_key_administration_answers_as_documented(api: Api) -> None:
    created = await api.call("POST", "/v1/admin/keys", expect=201, json={
        "tier": "pro", "name": "farm", "custom_limits": {"concurrent_executions": 4}})
    await api.call("GET", "/v1/admin/keys", expect=200)
    one, url = "/v1/admin/keys/{key_id}", f"/v1/admin/keys/{created.json()['key_id']}"
    await api.call("GET", one, url=url, expect=200)
    await api.call("PATCH", one, url=url, expect=200,
                   json={"custom_limits": {"concurrent_executions": 2}})
    await api.call("POST", one + "/rotate", url=url + "/rotate", expect=200)
    await api.call("DELETE", one, url=url, expect=200)
