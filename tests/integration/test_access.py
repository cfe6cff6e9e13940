"""Access control through the real app on real databases: tiers, limits, idempotency, scopes,
versions, and key administration. No worker runs, so submitted executions stay queued."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from comfy_serverless.access.admission import month_start
from comfy_serverless.api.app import create_app
from comfy_serverless.auth.keys import KeyKind, issue_key
from comfy_serverless.services import Services
from comfy_serverless.settings import Settings
from comfy_serverless.store.models import ModelFile
from comfy_serverless.store.records import WorkerState
from tests.conftest import fresh_postgres_schema
from tests.store_setup import set_key_usage
from workloads.workflows import inverted_image, tiny_sd15

EXECUTE = "/v1/workflows/execute"
RATE_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset", "RateLimit",
                "RateLimit-Policy")
VERSION_HEADERS = ("API-Version", "API-Deprecated", "API-Sunset")

ClientFor = Callable[[str], httpx.AsyncClient]


class AccessApp:
    def __init__(self, services: Services, transport: httpx.ASGITransport) -> None:
        self.services = services
        self._transport = transport
        self._clients: list[httpx.AsyncClient] = []

    def client(self, plaintext: str | None = None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {plaintext}"} if plaintext else {}
        client = httpx.AsyncClient(transport=self._transport, base_url="http://test",
                                   headers=headers)
        self._clients.append(client)
        return client

    async def new_key(self, tier: str = "basic", kind: KeyKind = "secret", *,
                      admin: bool = False) -> tuple[str, str]:
        issued = issue_key(kind, tier, is_admin=admin)
        await self.services.store.access.create_api_key(issued.record)
        return issued.plaintext, issued.record.id

    async def close(self) -> None:
        for client in self._clients:
            await client.aclose()


@pytest.fixture(params=["sqlite", "postgres"])
async def access_app(request: pytest.FixtureRequest, tmp_path: Path
                     ) -> AsyncIterator[AccessApp]:
    async def run(database_url: str | None) -> AsyncIterator[AccessApp]:
        settings = Settings(data_dir=tmp_path, embedded_worker=False, webhook_dispatcher=False,
                            database_url=database_url, api_sunset="2027-12-31")
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            harness = AccessApp(app.state.services, transport)
            try:
                yield harness
            finally:
                await harness.close()

    if request.param == "sqlite":
        async for harness in run(None):
            yield harness
    else:
        async with fresh_postgres_schema() as url:
            async for harness in run(url):
                yield harness


def _submit_body(workflow: dict[str, Any] | None = None, **execution_config: Any
                 ) -> dict[str, Any]:
    return {"workflow": workflow or inverted_image(1), "execution_config": execution_config}


def _assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["status"] == "error"
    assert body["error_code"] == code
    assert isinstance(body["message"], str)
    assert body["message"]
    return body


async def test_the_fourth_concurrent_execution_of_a_basic_key_gets_the_spec_429(
    access_app: AccessApp,
) -> None:
    plaintext, _ = await access_app.new_key("basic")
    api = access_app.client(plaintext)
    for _ in range(3):
        assert (await api.post(EXECUTE, json=_submit_body())).status_code == 202
    fourth = await api.post(EXECUTE, json=_submit_body())
    body = _assert_error(fourth, 429, "RATE_LIMIT_EXCEEDED")
    details = body["details"]
    assert details["current_executions"] == 3
    assert details["max_concurrent"] == 3
    assert "upgrade_url" in details
    assert isinstance(details["retry_after"], int)
    assert details["retry_after"] >= 1
    assert fourth.headers["Retry-After"] == str(details["retry_after"])
    assert fourth.headers["X-RateLimit-Retry-After"] == str(details["retry_after"])
    for header in RATE_HEADERS + VERSION_HEADERS:
        assert header in fourth.headers, header
    assert fourth.headers["X-RateLimit-Limit"] == "15", "10 a minute, plus a burst of 5"
    assert fourth.headers["X-RateLimit-Remaining"] == "11", "15 at once, 4 spent"


async def test_a_cancelled_execution_frees_its_slot(access_app: AccessApp) -> None:
    plaintext, _ = await access_app.new_key("basic")
    api = access_app.client(plaintext)
    ids = [(await api.post(EXECUTE, json=_submit_body())).json()["execution_id"]
           for _ in range(3)]
    assert (await api.post(EXECUTE, json=_submit_body())).status_code == 429
    assert (await api.delete(f"/v1/workflows/{ids[0]}/cancel")).status_code == 200
    assert (await api.post(EXECUTE, json=_submit_body())).status_code == 202


async def test_the_basic_tier_queue_holds_at_most_max_queue_size_executions(
    access_app: AccessApp,
) -> None:
    clients = [access_app.client((await access_app.new_key("basic"))[0]) for _ in range(4)]
    accepted = 0
    for api in clients[:3]:
        for _ in range(3):
            accepted += (await api.post(EXECUTE, json=_submit_body())).status_code == 202
    assert accepted == 9
    assert (await clients[3].post(EXECUTE, json=_submit_body())).status_code == 202
    eleventh = await clients[3].post(EXECUTE, json=_submit_body())
    body = _assert_error(eleventh, 429, "QUEUE_FULL")
    assert body["details"]["queued_executions"] == 10
    assert body["details"]["max_queue_size"] == 10
    assert "Retry-After" in eleventh.headers
    pro = access_app.client((await access_app.new_key("pro"))[0])
    assert (await pro.post(EXECUTE, json=_submit_body())).status_code == 202, \
        "another tier has its own share of the queue"


async def test_past_the_monthly_quota_a_basic_key_gets_429(access_app: AccessApp) -> None:
    plaintext, key_id = await access_app.new_key("basic")
    period = month_start(time.time()).strftime("%Y-%m")
    await set_key_usage(access_app.services.store, key_id, period, 99)
    api = access_app.client(plaintext)
    assert (await api.post(EXECUTE, json=_submit_body())).status_code == 202
    refused = await api.post(EXECUTE, json=_submit_body())
    body = _assert_error(refused, 429, "QUOTA_EXCEEDED")
    assert body["details"]["monthly_quota"] == 100
    assert body["details"]["executions_this_month"] == 100
    assert body["details"]["resets_at"].endswith("-01T00:00:00Z")
    assert await access_app.services.store.access.usage(key_id, period) == 100


async def test_requests_per_minute_allow_the_burst_then_429(access_app: AccessApp) -> None:
    plaintext, _ = await access_app.new_key("basic")
    api = access_app.client(plaintext)
    statuses = [(await api.get("/v1/workflows/exec_none/status")) for _ in range(16)]
    assert [response.status_code for response in statuses[:15]] == [404] * 15
    assert statuses[0].headers["X-RateLimit-Remaining"] == "14"
    assert statuses[14].headers["X-RateLimit-Remaining"] == "0"
    assert int(statuses[0].headers["X-RateLimit-Reset"]) >= int(time.time())
    assert statuses[0].headers["RateLimit-Policy"] == '"requests";q=10;w=60;burst=5'
    body = _assert_error(statuses[15], 429, "RATE_LIMIT_EXCEEDED")
    assert body["details"]["limit"] == "requests_per_minute"
    assert 1 <= int(statuses[15].headers["Retry-After"]) <= 6


async def test_tier_rules_on_timeout_and_models(access_app: AccessApp) -> None:
    basic = access_app.client((await access_app.new_key("basic"))[0])
    too_long = await basic.post(EXECUTE, json=_submit_body(timeout=301))
    assert _assert_error(too_long, 403, "TIMEOUT_LIMIT_EXCEEDED")["details"]["timeout_limit"] \
        == 300
    accepted = await basic.post(EXECUTE, json=_submit_body(tiny_sd15(1)))
    assert accepted.status_code == 202, "tiny-sd15 is in basic_models"
    stored = await access_app.services.store.executions.execution(accepted.json()["execution_id"])
    assert stored is not None
    assert stored.options.run.timeout == 300
    sdxl = tiny_sd15(1)
    sdxl["4"]["inputs"]["ckpt_name"] = "sd_xl_base_1.0.safetensors"
    refused = _assert_error(await basic.post(EXECUTE, json=_submit_body(sdxl)), 403,
                            "MODEL_NOT_ALLOWED")
    assert refused["details"]["models"] == ["checkpoints/sd_xl_base_1.0.safetensors"]
    pro = access_app.client((await access_app.new_key("pro"))[0])
    assert (await pro.post(EXECUTE, json=_submit_body(sdxl))).status_code == 202


async def test_a_request_id_returns_the_original_execution(access_app: AccessApp) -> None:
    api = access_app.client((await access_app.new_key("pro"))[0])
    headers = {"X-Request-ID": "order-1001"}
    first = await api.post(EXECUTE, json=_submit_body(), headers=headers)
    again = await api.post(EXECUTE, json=_submit_body(), headers=headers)
    alias = await api.post(EXECUTE, json=_submit_body(), headers={"Idempotency-Key": "order-1001"})
    assert first.status_code == again.status_code == alias.status_code == 202
    assert first.json()["execution_id"] == again.json()["execution_id"] \
        == alias.json()["execution_id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    other_body = await api.post(EXECUTE, json=_submit_body(inverted_image(2)), headers=headers)
    body = _assert_error(other_body, 409, "IDEMPOTENCY_KEY_REUSED")
    assert body["details"]["execution_id"] == first.json()["execution_id"]
    other_key = access_app.client((await access_app.new_key("pro"))[0])
    theirs = await other_key.post(EXECUTE, json=_submit_body(), headers=headers)
    assert theirs.json()["execution_id"] != first.json()["execution_id"], "ids are per key"


async def test_concurrent_duplicates_create_exactly_one_execution(access_app: AccessApp) -> None:
    plaintext, key_id = await access_app.new_key("pro")
    clients = [access_app.client(plaintext) for _ in range(8)]
    responses = await asyncio.gather(*(
        api.post(EXECUTE, json=_submit_body(), headers={"X-Request-ID": "same-click"})
        for api in clients))
    assert {response.status_code for response in responses} == {202}
    assert len({response.json()["execution_id"] for response in responses}) == 1
    assert len(await access_app.services.store.access.unfinished(key_id)) == 1
    period = month_start(time.time()).strftime("%Y-%m")
    assert await access_app.services.store.access.usage(key_id, period) == 1


async def test_another_key_gets_404_for_status_results_and_cancel(access_app: AccessApp) -> None:
    owner = access_app.client((await access_app.new_key("pro"))[0])
    execution_id = (await owner.post(EXECUTE, json=_submit_body())).json()["execution_id"]
    for plaintext in ((await access_app.new_key("pro"))[0],
                      (await access_app.new_key("pro", "public"))[0]):
        stranger = access_app.client(plaintext)
        for response in (await stranger.get(f"/v1/workflows/{execution_id}/status"),
                         await stranger.get(f"/v1/workflows/{execution_id}/results"),
                         await stranger.delete(f"/v1/workflows/{execution_id}/cancel")):
            _assert_error(response, 404, "EXECUTION_NOT_FOUND")
    assert (await owner.get(f"/v1/workflows/{execution_id}/status")).json()["status"] == "queued"


async def test_a_public_key_submits_reads_and_cancels_its_own_and_nothing_else(
    access_app: AccessApp,
) -> None:
    public = access_app.client((await access_app.new_key("pro", "public"))[0])
    execution_id = (await public.post(EXECUTE, json=_submit_body())).json()["execution_id"]
    assert (await public.get(f"/v1/workflows/{execution_id}/status")).status_code == 200
    assert (await public.get(f"/v1/workflows/{execution_id}/results")).status_code == 202
    assert (await public.delete(f"/v1/workflows/{execution_id}/cancel")).status_code == 200
    assert (await public.get("/v1/models/list")).status_code == 200
    preload = {"models": [{"model_id": "checkpoint/tiny-sd15"}], "cache_duration": 60}
    for response in (await public.get("/v1/queue/status"),
                     await public.post("/v1/models/preload", json=preload),
                     await public.get("/v1/webhooks"),
                     await public.post("/v1/webhooks", json={"url": "https://example.com/h"}),
                     await public.get("/v1/admin/keys")):
        body = _assert_error(response, 403, "FORBIDDEN")
        assert body["details"]["required_key_type"] == "secret"
    secret = access_app.client((await access_app.new_key("pro"))[0])
    assert (await secret.get("/v1/queue/status")).status_code == 200


async def test_version_headers_on_every_response_and_404_for_unknown_versions(
    access_app: AccessApp,
) -> None:
    anonymous = access_app.client()
    for response in (await anonymous.get("/healthz"),
                     await anonymous.get("/v1/queue/status"),
                     await anonymous.post("/v2/workflows/execute", json={})):
        assert response.headers["API-Version"] == "v1"
        assert response.headers["API-Deprecated"] == "false"
        assert response.headers["API-Sunset"] == "2027-12-31"
    unknown = _assert_error(await anonymous.get("/v2/workflows/x/status"), 404,
                            "API_VERSION_NOT_FOUND")
    assert unknown["details"]["supported_versions"] == ["v1"]
    assert "X-RateLimit-Limit" not in (await anonymous.get("/v1/queue/status")).headers, \
        "an unauthenticated response spends no budget"


async def test_admin_routes_create_list_limit_rotate_and_revoke_keys(
    access_app: AccessApp,
) -> None:
    admin = access_app.client((await access_app.new_key("enterprise", admin=True))[0])
    created = await admin.post("/v1/admin/keys", json={
        "tier": "basic", "name": "mobile app", "custom_limits": {"requests_per_minute": 20}})
    assert created.status_code == 201, created.text
    view = created.json()
    assert view["api_key"].startswith("comfyui_sk_")
    assert view["limits"]["requests_per_minute"] == 20
    assert view["limits"]["concurrent_executions"] == 3
    key_id = view["key_id"]
    listed = (await admin.get("/v1/admin/keys")).json()["keys"]
    assert key_id in [key["key_id"] for key in listed]
    assert all("secret_hash" not in key and "api_key" not in key for key in listed)

    old = access_app.client(view["api_key"])
    assert (await old.get("/v1/queue/status")).headers["X-RateLimit-Limit"] == "25"
    assert (await old.get("/v1/queue/status")).json()
    patched = await admin.patch(f"/v1/admin/keys/{key_id}",
                                json={"custom_limits": {"requests_per_minute": None}})
    assert patched.json()["limits"]["requests_per_minute"] == 10
    assert (await admin.get(f"/v1/admin/keys/{key_id}")).json()["last_used_at"] is not None

    rotated = (await admin.post(f"/v1/admin/keys/{key_id}/rotate")).json()
    _assert_error(await old.get("/v1/queue/status"), 401, "UNAUTHORIZED")
    new = access_app.client(rotated["api_key"])
    assert (await new.get("/v1/queue/status")).status_code == 200
    assert rotated["rotated_at"] is not None
    assert rotated["key_id"] == key_id

    revoked = (await admin.delete(f"/v1/admin/keys/{key_id}")).json()
    assert revoked["revoked_at"] is not None
    _assert_error(await new.get("/v1/queue/status"), 401, "UNAUTHORIZED")
    _assert_error(await admin.get("/v1/admin/keys/key_missing"), 404, "API_KEY_NOT_FOUND")
    for limits in ({"rpm": 1}, {"requests_per_minute": 0}, {"timeout_limit": 0},
                   {"concurrent_executions": -1}, {"monthly_quota": 1.5}):
        bad = await admin.post("/v1/admin/keys", json={"custom_limits": limits})
        _assert_error(bad, 400, "INVALID_REQUEST")
    nulls = await admin.post("/v1/admin/keys", json={"custom_limits": {"monthly_quota": None}})
    assert nulls.json()["custom_limits"] == {}
    not_admin = access_app.client((await access_app.new_key("enterprise"))[0])
    _assert_error(await not_admin.get("/v1/admin/keys"), 403, "FORBIDDEN")


async def _worker_holding(access_app: AccessApp, *files: tuple[str, str]) -> None:
    store = access_app.services.store
    await store.workers.heartbeat_worker(WorkerState("w-models", "idle", None, None, None))
    await store.models.publish("w-models", [ModelFile(folder, name, 1024, time.time())
                                            for folder, name in files])


async def test_a_preload_obeys_the_tier_model_groups_and_the_active_cap(
    access_app: AccessApp,
) -> None:
    await _worker_holding(access_app, ("checkpoints", "sd_xl_base_1.0.safetensors"),
                          *[("checkpoints", f"v1-5-variant-{n}.safetensors") for n in range(12)])
    basic = access_app.client((await access_app.new_key("basic"))[0])
    sdxl = {"models": [{"model_id": "checkpoint/sd_xl_base_1.0"}], "cache_duration": 60}
    refused = _assert_error(await basic.post("/v1/models/preload", json=sdxl), 403,
                            "MODEL_NOT_ALLOWED")
    assert refused["details"]["models"] == ["checkpoints/sd_xl_base_1.0.safetensors"]
    pro = access_app.client((await access_app.new_key("pro"))[0])
    assert (await pro.post("/v1/models/preload", json=sdxl)).status_code == 202
    many: dict[str, Any] = {"models": [{"model_id": f"checkpoint/v1-5-variant-{n}"}
                                       for n in range(10)],
            "cache_duration": 60}
    over = _assert_error(await pro.post("/v1/models/preload", json=many), 429,
                         "PRELOAD_LIMIT_EXCEEDED")
    assert over["details"]["active_preloads"] == 1
    assert over["details"]["max_active_preloads"] == 10
    many["models"] = many["models"][:9]
    assert (await pro.post("/v1/models/preload", json=many)).status_code == 202


async def test_concurrent_submits_of_many_keys_never_overfill_the_tier_queue(
    access_app: AccessApp,
) -> None:
    clients = [access_app.client((await access_app.new_key("basic"))[0]) for _ in range(14)]
    responses = await asyncio.gather(*(api.post(EXECUTE, json=_submit_body())
                                       for api in clients))
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [202] * 10 + [429] * 4
    assert {r.json()["error_code"] for r in responses if r.status_code == 429} == {"QUEUE_FULL"}


async def test_a_tiers_file_configures_the_running_service(tmp_path: Path) -> None:
    tiers = tmp_path / "tiers.json"
    tiers.write_text(json.dumps({
        "permission_levels": {"basic": {"max_concurrent_executions": 1}},
        "tiers": {"team": {"requests_per_minute": 30, "burst_allowance": 0,
                           "concurrent_executions": 2, "max_queue_size": 5,
                           "timeout_limit": 60, "models": ["all_models"],
                           "gpu_types": ["all"]}}}))
    settings = Settings(data_dir=tmp_path, embedded_worker=False, webhook_dispatcher=False,
                        database_url=None, tiers_file=tiers)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        harness = AccessApp(app.state.services, httpx.ASGITransport(app=app))
        try:
            basic = harness.client((await harness.new_key("basic"))[0])
            assert (await basic.post(EXECUTE, json=_submit_body())).status_code == 202
            refused = _assert_error(await basic.post(EXECUTE, json=_submit_body()), 429,
                                    "RATE_LIMIT_EXCEEDED")
            assert refused["details"]["max_concurrent"] == 1
            team = harness.client((await harness.new_key("team"))[0])
            accepted = await team.post(EXECUTE, json=_submit_body())
            assert accepted.headers["X-RateLimit-Limit"] == "30"
            assert accepted.headers["RateLimit-Policy"] == '"requests";q=30;w=60;burst=0'
            _assert_error(await team.post(EXECUTE, json=_submit_body(timeout=61)), 403,
                          "TIMEOUT_LIMIT_EXCEEDED")
        finally:
            await harness.close()


def _png_data_uri() -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _with_image() -> dict[str, Any]:
    return {"1": {"class_type": "LoadImage", "inputs": {"image": _png_data_uri()}},
            "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
            "3": {"class_type": "SaveImage",
                  "inputs": {"filename_prefix": "inv", "images": ["2", 0]}}}


def _staged_files(access_app: AccessApp) -> list[Path]:
    root = access_app.services.local_storage.root
    return [path for path in root.rglob("*") if path.is_file() and "inputs" in path.parts]


async def test_staged_images_of_refused_or_cancelled_submissions_are_deleted(
    access_app: AccessApp,
) -> None:
    api = access_app.client((await access_app.new_key("basic"))[0])
    queued = (await api.post(EXECUTE, json=_submit_body(_with_image()))).json()["execution_id"]
    assert len(_staged_files(access_app)) == 1
    for _ in range(2):
        assert (await api.post(EXECUTE, json=_submit_body())).status_code == 202
    refused = await api.post(EXECUTE, json=_submit_body(_with_image()))
    _assert_error(refused, 429, "RATE_LIMIT_EXCEEDED")
    assert len(_staged_files(access_app)) == 1, "the refused submit left nothing behind"
    assert (await api.delete(f"/v1/workflows/{queued}/cancel")).status_code == 200
    assert _staged_files(access_app) == [], "a cancelled execution needs no input"
