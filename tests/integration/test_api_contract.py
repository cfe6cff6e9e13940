"""The HTTP contract that needs no ComfyUI: errors in the spec's shape, auth, validation."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from comfy_serverless.api.app import create_app
from comfy_serverless.auth.keys import issue_key
from comfy_serverless.errors import StorageError
from comfy_serverless.executions.submission import new_execution_id
from comfy_serverless.services import Services
from comfy_serverless.settings import Settings
from comfy_serverless.store.options import ExecutionOptions
from comfy_serverless.store.records import NewExecution, ProgressSnapshot, WorkerState
from comfy_serverless.store.store import Store
from workloads.workflows import inverted_image, tiny_sd15


def _assert_error_shape(body: dict[str, Any], code: str) -> None:
    assert body["status"] == "error"
    assert body["error_code"] == code
    assert isinstance(body["message"], str)
    assert body["message"]
    assert isinstance(body["details"], dict)
    assert "Traceback" not in str(body)


@pytest.fixture
async def app_and_client(tmp_path: Path) -> AsyncIterator[tuple[Services, httpx.AsyncClient]]:
    settings = Settings(data_dir=tmp_path, embedded_worker=False, max_request_bytes=100_000,
                        webhook_dispatcher=False,
                        database_url=None)
    app = create_app(settings)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals")

    @app.get("/storage-boom")
    async def storage_boom() -> None:
        raise StorageError("bucket vanished")

    async with app.router.lifespan_context(app):
        services: Services = app.state.services
        issued = issue_key("secret", "enterprise")
        await services.store.access.create_api_key(issued.record)
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        headers = {"Authorization": f"Bearer {issued.plaintext}"}
        async with httpx.AsyncClient(transport=transport, base_url="http://test",
                                     headers=headers) as client:
            yield services, client


@pytest.fixture
def app_client(app_and_client: tuple[Services, httpx.AsyncClient]) -> httpx.AsyncClient:
    return app_and_client[1]


async def test_framework_errors_use_the_spec_shape(app_client: httpx.AsyncClient) -> None:
    _assert_error_shape((await app_client.get("/v1/unknown")).json(), "NOT_FOUND")
    wrong_method = await app_client.put("/v1/workflows/execute")
    assert wrong_method.status_code == 405
    _assert_error_shape(wrong_method.json(), "METHOD_NOT_ALLOWED")
    crash = await app_client.get("/boom")
    assert crash.status_code == 500
    _assert_error_shape(crash.json(), "INTERNAL_ERROR")
    assert "secret internals" not in crash.text
    assert crash.headers["API-Version"] == "v1", "even a crash carries the version headers"
    storage = await app_client.get("/storage-boom")
    assert storage.status_code == 502
    _assert_error_shape(storage.json(), "STORAGE_UNAVAILABLE")
    assert storage.headers["Retry-After"] == "5"


async def test_bad_bodies_get_400_with_the_fields(app_client: httpx.AsyncClient) -> None:
    response = await app_client.post("/v1/workflows/execute", json={
        "workflow": inverted_image(1), "execution_config": {"priority": 11}, "typo": 1})
    assert response.status_code == 400
    body = response.json()
    _assert_error_shape(body, "INVALID_REQUEST")
    fields = {problem["field"] for problem in body["details"]["validation_errors"]}
    assert fields == {"body.execution_config.priority", "body.typo"}
    not_json = await app_client.post("/v1/workflows/execute", content=b"{nope",
                                     headers={"content-type": "application/json"})
    assert not_json.status_code == 400


async def test_broken_workflows_get_the_validation_error(
    app_client: httpx.AsyncClient,
) -> None:
    response = await app_client.post("/v1/workflows/execute", json={"workflow": {
        "1": {"class_type": "ImageInvert", "inputs": {"image": ["7", 0]}}}})
    assert response.status_code == 400
    body = response.json()
    _assert_error_shape(body, "WORKFLOW_VALIDATION_FAILED")
    [problem] = body["details"]["validation_errors"]
    assert problem["node_id"] == "1"
    assert {"missing_nodes", "invalid_connections"} <= set(body["details"])


async def test_unsupported_options_are_refused_not_ignored(
    app_client: httpx.AsyncClient,
) -> None:
    response = await app_client.post("/v1/workflows/execute", json={
        "workflow": inverted_image(1), "output_config": {"storage": {"provider": "s3"}}})
    assert response.status_code == 422
    _assert_error_shape(response.json(), "FEATURE_UNAVAILABLE")


async def test_large_bodies_are_refused_before_reading(app_client: httpx.AsyncClient) -> None:
    response = await app_client.post("/v1/workflows/execute", content=b"x" * 200_000,
                                     headers={"content-type": "application/json"})
    assert response.status_code == 413
    _assert_error_shape(response.json(), "PAYLOAD_TOO_LARGE")


async def test_missing_and_unknown_keys_get_401(app_client: httpx.AsyncClient) -> None:
    for headers in ({"Authorization": ""}, {"Authorization": "Bearer comfyui_sk_nope"}):
        response = await app_client.get("/v1/workflows/exec_x/status", headers=headers)
        assert response.status_code == 401
        _assert_error_shape(response.json(), "UNAUTHORIZED")
        assert response.headers["www-authenticate"] == "Bearer"


async def test_a_queued_execution_reports_its_place(app_client: httpx.AsyncClient) -> None:
    first = (await app_client.post("/v1/workflows/execute",
                                   json={"workflow": inverted_image(1)})).json()
    urgent = (await app_client.post("/v1/workflows/execute", json={
        "workflow": inverted_image(2), "execution_config": {"priority": 9}})).json()
    assert (first["queue_position"], urgent["queue_position"]) == (1, 1)
    status = (await app_client.get(first["status_url"])).json()
    assert status["status"] == "queued"
    assert status["queue_position"] == 2
    waited = await app_client.get(f"/v1/workflows/{first['execution_id']}/results",
                                  params={"wait": 0.3})
    assert waited.status_code == 202
    assert waited.json()["status"] == "queued"
    cancelled = (await app_client.delete(first["cancel_url"])).json()
    assert cancelled["status"] == "cancelled"
    assert cancelled["partial_results"] == {"available": False, "completed_nodes": 0,
                                            "total_nodes": 3}
    after = await app_client.get(f"/v1/workflows/{first['execution_id']}/results")
    assert after.status_code == 409
    _assert_error_shape(after.json(), "EXECUTION_NOT_SUCCESSFUL")


async def test_documentation_urls_are_served_by_the_service(
    app_client: httpx.AsyncClient,
) -> None:
    response = await app_client.post("/v1/workflows/execute", json={"workflow": {
        "1": {"class_type": "<script>", "inputs": {"image": ["7", 0]}}}})
    link = response.json()["documentation_url"]
    assert link == "http://127.0.0.1:8000/errors/WORKFLOW_VALIDATION_FAILED", "the bind address"
    page = await app_client.get(link)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "WORKFLOW_VALIDATION_FAILED" in page.text
    unknown = await app_client.get("/errors/%3Cscript%3E")
    assert unknown.status_code == 404
    assert unknown.headers["content-type"] == "application/json", "never HTML with user input"


async def test_timeouts_are_capped_and_batch_size_is_a_shorthand(
    app_and_client: tuple[Services, httpx.AsyncClient],
) -> None:
    services, client = app_and_client
    at_limit = await client.post("/v1/workflows/execute", json={
        "workflow": inverted_image(1), "execution_config": {"timeout": 3600}})
    assert at_limit.status_code == 202
    too_long = await client.post("/v1/workflows/execute", json={
        "workflow": inverted_image(1), "execution_config": {"timeout": 3601}})
    assert too_long.status_code == 400
    _assert_error_shape(too_long.json(), "INVALID_REQUEST")
    accepted = (await client.post("/v1/workflows/execute", json={
        "workflow": tiny_sd15(1), "execution_config": {"batch_size": 2}})).json()
    stored = await services.store.executions.execution(accepted["execution_id"])
    assert stored is not None
    assert stored.workflow["5"]["inputs"]["batch_size"] == 2
    assert stored.options.run.timeout == 3600


async def test_an_unavailable_store_answers_503_with_retry_after(
    app_and_client: tuple[Services, httpx.AsyncClient],
) -> None:
    services, client = app_and_client
    await services.store.close()
    response = await client.get("/v1/workflows/exec_x/status")
    assert response.status_code == 503
    _assert_error_shape(response.json(), "STORE_UNAVAILABLE")
    assert response.headers["retry-after"] == "5"


REFUSED_WEBHOOK_URLS = [  # all refused by the validator; none is ever contacted
    "https://10.0.0.7/hook",  # refused: private
    "https://localhost/hook",  # refused: loopback
    "http://203.0.113.9/hook",  # refused: not https
    "https://[fd00::1]/hook",  # refused: unique local
]


@pytest.mark.parametrize("url", REFUSED_WEBHOOK_URLS)
async def test_an_internal_or_plain_webhook_url_is_refused_at_submit(
    app_client: httpx.AsyncClient, url: str,
) -> None:
    """The validator refuses these before any connection is attempted."""
    response = await app_client.post("/v1/workflows/execute", json={
        "workflow": inverted_image(1), "notification_config": {"webhook_url": url}})
    assert response.status_code == 400
    _assert_error_shape(response.json(), "INVALID_WEBHOOK_URL")
    header = await app_client.post("/v1/workflows/execute", json={"workflow": inverted_image(1)},
                                   headers={"X-Webhook-URL": url})
    assert header.status_code == 400


async def test_registered_endpoints_never_show_their_secret(
    app_client: httpx.AsyncClient,
) -> None:
    created = await app_client.post("/v1/webhooks", json={
        # Registration only checks the URL (no dispatcher runs here): it is never contacted.
        "url": "https://93.184.215.14/hooks", "events": ["model.updated"], "secret": "s3cret"})
    assert created.status_code == 201, created.text
    assert "secret" not in created.text
    assert "s3cret" not in created.text
    listed = (await app_client.get("/v1/webhooks")).json()["webhooks"]
    assert [w["id"] for w in listed] == [created.json()["id"]]
    assert "s3cret" not in str(listed)
    bad = await app_client.post("/v1/webhooks", json={"url": "https://93.184.215.14/h",
                                                      "events": ["execution.nope"]})
    assert bad.status_code == 400
    assert (await app_client.delete(f"/v1/webhooks/{created.json()['id']}")).status_code == 200
    assert (await app_client.delete(f"/v1/webhooks/{created.json()['id']}")).status_code == 404


async def test_maintenance_needs_an_admin_key(
    app_and_client: tuple[Services, httpx.AsyncClient],
) -> None:
    services, client = app_and_client
    refused = await client.post("/v1/admin/maintenance", json={"message": "soon"})
    assert refused.status_code == 403
    _assert_error_shape(refused.json(), "FORBIDDEN")
    admin = issue_key("secret", "enterprise", is_admin=True)
    await services.store.access.create_api_key(admin.record)
    accepted = await client.post("/v1/admin/maintenance", json={"message": "soon"},
                                 headers={"Authorization": f"Bearer {admin.plaintext}"})
    assert accepted.status_code == 202
    assert accepted.json()["endpoints_notified"] == 0


async def _queue(store: Store, key_id: str, priority: int, submitted_at: float) -> None:
    """An execution put straight in the store: the API's queue figures must report it."""
    await store.executions.create_execution(NewExecution(
        id=new_execution_id(), api_key_id=key_id, priority=priority, workflow=inverted_image(1),
        options=ExecutionOptions(), signature="s", webhook_url=None, client_id=None,
        submitted_at=submitted_at, max_attempts=1, total_nodes=3))


async def test_queue_status_is_exactly_what_the_store_holds(
    app_and_client: tuple[Services, httpx.AsyncClient],
) -> None:
    services, client = app_and_client
    store, now = services.store, time.time()
    key = issue_key("secret", "basic").record
    await store.access.create_api_key(key)
    for priority, age in ((10, 40), (5, 30), (5, 10), (1, 5)):
        await _queue(store, key.id, priority, now - age)
    first = await store.claims.claim_next("w2", 30)
    assert first is not None
    assert await store.claims.complete(first.lease, [],
                                       ProgressSnapshot(1, None, None, None, None, 3),
                                       0.0)
    assert await store.claims.claim_next("w2", 30) is not None
    gib = 1024**3
    for worker_id, state, free in (("w1", "idle", 20 * gib), ("w2", "busy", 4 * gib)):
        stats = {"devices": [{"vram_total": 24 * gib, "vram_free": free}]}
        await store.workers.heartbeat_worker(WorkerState(worker_id, state, "A10G", stats, None))
    body = (await client.get("/v1/queue/status")).json()
    queue = body["queue_status"]
    assert (queue["total_queued"], queue["total_processing"]) == (2, 1)
    assert abs(queue["avg_wait_time"] - 35) < 2
    assert queue["avg_processing_time"] < 2
    assert body["system_capacity"] == {
        "total_gpu_nodes": 2, "available_gpu_nodes": 1, "total_gpu_memory": "48.0GB",
        "available_gpu_memory": "24.0GB", "utilization": 0.5}
    breakdown = body["queue_breakdown"]
    assert [(b["priority"], b["count"]) for b in breakdown] == [(5, 1), (1, 1)]
    assert abs(breakdown[0]["avg_wait_time"] - 10) < 2
    assert abs(breakdown[1]["avg_wait_time"] - 5) < 2


async def test_metrics_parse_with_prometheus_clients_own_parser(
    app_and_client: tuple[Services, httpx.AsyncClient],
) -> None:
    services, client = app_and_client
    store, now = services.store, time.time()
    key = issue_key("secret", "basic").record
    await store.access.create_api_key(key)
    for priority in (9, 3, 3):
        await _queue(store, key.id, priority, now - 2)
    done = await store.claims.claim_next("w1", 30)
    assert done is not None
    assert await store.claims.complete(done.lease, [],
                                       ProgressSnapshot(1, None, None, None, None, 3),
                                       0.1)
    await store.workers.heartbeat_worker(WorkerState("w1", "idle", None, None, None))
    response = await client.get("/metrics")
    assert response.status_code == 200
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in families.values() for s in family.samples}
    assert samples[("comfy_serverless_executions", (("status", "completed"),))] == 1
    assert samples[("comfy_serverless_queue_depth", (("priority", "3"),))] == 2
    assert samples[("comfy_serverless_workers", (("state", "idle"),))] == 1
    assert samples[("comfy_serverless_processing_seconds_count", ())] == 1
    assert samples[("comfy_serverless_queue_wait_seconds_bucket", (("le", "+Inf"),))] == 1
    assert families["comfy_serverless_queue_wait_seconds"].type == "histogram"
