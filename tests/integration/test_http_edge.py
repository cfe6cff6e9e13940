"""The HTTP edge in one process (no ComfyUI): rate headers on every answer, an honest
OpenAPI document and Allow header for every route, strict request models, bounded custom
limits, idempotent replays, X-Client-ID and who may scrape /metrics."""

from __future__ import annotations

import types
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, Union, get_args, get_origin

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from pydantic import BaseModel

from comfy_serverless.api.app import create_app
from comfy_serverless.api.contract import dependency_calls, flat_routes
from comfy_serverless.api.deps import CurrentKey, current_key
from comfy_serverless.auth.administration import parse_limits
from comfy_serverless.auth.keys import issue_key
from comfy_serverless.errors import RequestInvalid
from comfy_serverless.services import Services
from comfy_serverless.settings import Settings
from tests.helpers import assert_error
from workloads.workflows import inverted_image

EXECUTE = "/v1/workflows/execute"
ERROR_BODY = "#/components/schemas/ErrorBody"


class Edge:
    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.services: Services = app.state.services
        self._transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)

    async def client(self, tier: str = "enterprise", *, admin: bool = False,
                     custom_limits: dict[str, int | None] | None = None) -> httpx.AsyncClient:
        issued = issue_key("secret", tier, is_admin=admin, custom_limits=custom_limits)
        await self.services.store.access.create_api_key(issued.record)
        return httpx.AsyncClient(transport=self._transport, base_url="http://test",
                                 headers={"Authorization": f"Bearer {issued.plaintext}"})


async def _running(settings: Settings) -> AsyncIterator[Edge]:
    app = create_app(settings)

    @app.get("/v1/boom", include_in_schema=False)
    async def boom(key: CurrentKey) -> None:
        raise RuntimeError("secret internals")

    async with app.router.lifespan_context(app):
        yield Edge(app)


@pytest.fixture
async def edge(tmp_path: Path) -> AsyncIterator[Edge]:
    settings = Settings(data_dir=tmp_path, embedded_worker=False, webhook_dispatcher=False,
                        database_url=None)
    async for running in _running(settings):
        yield running


# --------------------------------------------------------------------------- headers


async def test_a_crash_on_an_authenticated_request_carries_its_rate_limit(edge: Edge) -> None:
    async with await edge.client("basic") as client:
        crash = await client.get("/v1/boom")
    assert_error(crash, 500, "INTERNAL_ERROR")
    assert crash.headers["X-RateLimit-Limit"] == "15"
    assert int(crash.headers["X-RateLimit-Remaining"]) <= 15


# --------------------------------------------------------------------------- the contract


def _api_routes(app: FastAPI) -> list[APIRoute]:
    return [route for route in flat_routes(app.routes)
            if isinstance(route, APIRoute) and route.include_in_schema]


async def test_every_route_declares_its_error_answers(edge: Edge) -> None:
    document = edge.app.openapi()
    for route in _api_routes(edge.app):
        for method in route.methods or ():
            answers = document["paths"][route.path_format][method.lower()]["responses"]
            errors = {int(status): answer for status, answer in answers.items()
                      if int(status) >= 400}
            assert {400, 500, 503} <= set(errors), (route.path, method)
            if current_key in dependency_calls(route.dependant):
                assert {401, 429} <= set(errors), (route.path, method)
            if route.body_field is not None:
                assert {408, 413} <= set(errors), (route.path, method)
            for status, answer in errors.items():
                schema = answer["content"]["application/json"]["schema"]
                assert schema == _error_schema(route.path, status), (route.path, method, status)
    execute = document["paths"][EXECUTE]["post"]["responses"]
    assert {"400", "401", "403", "409", "413", "422", "429"} <= set(execute)
    assert set(document["paths"]["/metrics"]["get"]["responses"]["200"]["content"]) == {
        "text/plain"}
    assert "HTTPValidationError" not in document["components"]["schemas"]


def _error_schema(path: str, status: int) -> dict[str, Any]:
    """The spec's error body; readyz's 503 may also be its own body (store or engine down)."""
    if (path, status) == ("/readyz", 503):
        return {"anyOf": [{"$ref": "#/components/schemas/Readiness"}, {"$ref": ERROR_BODY}]}
    return {"$ref": ERROR_BODY}


async def test_a_preload_of_an_unknown_model_answers_a_declared_404(edge: Edge) -> None:
    """Found by schemathesis (tests/contract): the 404 was answered, not declared."""
    async with await edge.client() as client:
        response = await client.post("/v1/models/preload",
                                     json={"models": [{"model_id": "nowhere.safetensors"}]})
    assert_error(response, 404, "MODEL_NOT_FOUND")
    answers = edge.app.openapi()["paths"]["/v1/models/preload"]["post"]["responses"]
    assert answers["404"]["content"]["application/json"]["schema"] == {"$ref": ERROR_BODY}


async def test_an_ended_event_stream_declares_its_204(edge: Edge) -> None:
    """Found by schemathesis: a resume after the end event answers 204 (tested on the real
    engine in test_event_stream.py), and the document did not say so."""
    answers = edge.app.openapi()["paths"]["/v1/workflows/{execution_id}/events"]["get"]
    assert "204" in answers["responses"]
    assert "content" not in answers["responses"]["204"]


async def test_a_405_allows_every_method_of_its_path(edge: Edge) -> None:
    methods_by_path: dict[str, set[str]] = {}
    for route in _api_routes(edge.app):
        methods_by_path.setdefault(route.path, set()).update(route.methods or ())
    async with await edge.client(admin=True) as client:
        for path, methods in methods_by_path.items():
            concrete = path.replace("{key:path}", "x").replace("{", "").replace("}", "")
            unused = next(m for m in ("PUT", "PATCH", "POST", "DELETE") if m not in methods)
            response = await client.request(unused, concrete)
            assert_error(response, 405, "METHOD_NOT_ALLOWED")
            allowed = set(response.headers["Allow"].split(", "))
            assert methods <= allowed, (path, allowed)


def _number_fields(model: type[BaseModel]) -> Iterator[tuple[type[BaseModel], str]]:
    for name, field in model.model_fields.items():
        for kind in _kinds(field.annotation):
            if kind in (int, float, bool):
                yield model, name
            elif isinstance(kind, type) and issubclass(kind, BaseModel):
                yield from _number_fields(kind)


def _kinds(annotation: Any) -> list[Any]:
    if get_origin(annotation) in (Union, types.UnionType, list, dict):
        return [kind for arg in get_args(annotation) for kind in _kinds(arg)]
    return [annotation]


async def test_every_number_of_every_request_body_is_strict(edge: Edge) -> None:
    annotations = [route.body_field.field_info.annotation for route in _api_routes(edge.app)
                   if route.body_field is not None]
    bodies = [body for body in annotations
              if isinstance(body, type) and issubclass(body, BaseModel)]
    assert len(bodies) == len(annotations), "every request body is a pydantic model"
    fields = [found for body in bodies for found in _number_fields(body)]
    assert len(fields) > 10
    for model, name in fields:
        assert model.model_config.get("strict") is True, (model.__name__, name)


# --------------------------------------------------------------------------- custom limits


async def test_custom_limits_are_bounded_at_creation_and_at_update(edge: Edge) -> None:
    async with await edge.client(admin=True) as admin:
        created = await admin.post("/v1/admin/keys", json={
            "tier": "basic", "custom_limits": {"concurrent_executions": 10**29}})
        body = assert_error(created, 400, "INVALID_REQUEST")
        assert body["details"]["field"] == "custom_limits.concurrent_executions"
        assert body["details"]["maximum"] == 1_000_000_000
        key_id = (await admin.post("/v1/admin/keys", json={"tier": "basic"})).json()["key_id"]
        for name in ("requests_per_minute", "monthly_quota", "timeout_limit"):
            updated = await admin.patch(f"/v1/admin/keys/{key_id}",
                                        json={"custom_limits": {name: 10**29}})
            assert assert_error(updated, 400, "INVALID_REQUEST")["details"]["field"] == (
                f"custom_limits.{name}")
    with pytest.raises(RequestInvalid, match="max_queue_size must be a whole number from 1"):
        parse_limits({"max_queue_size": "1" * 30})  # `keys create --limit max_queue_size=…`


async def test_a_limit_stored_before_the_bounds_cannot_make_a_500(edge: Edge) -> None:
    names = ("requests_per_minute", "burst_allowance", "concurrent_executions",
             "max_queue_size", "monthly_quota", "timeout_limit")
    huge: dict[str, int | None] = {name: 10**29 for name in names}
    async with await edge.client("basic", custom_limits=huge) as client:
        accepted = await client.post(EXECUTE, json={"workflow": inverted_image(1)})
        assert accepted.status_code == 202, accepted.text
        assert (await client.get("/v1/queue/status")).status_code == 200


# --------------------------------------------------------------------------- submissions


async def test_a_replay_reports_the_executions_current_status(edge: Edge) -> None:
    async with await edge.client() as client:
        first = await client.post(EXECUTE, json={"workflow": inverted_image(2)},
                                  headers={"X-Request-ID": "order-77"})
        execution_id = first.json()["execution_id"]
        cancelled = await client.delete(f"/v1/workflows/{execution_id}/cancel")
        assert cancelled.status_code == 200, cancelled.text
        replays = [await client.post(EXECUTE, json={"workflow": inverted_image(2)},
                                     headers={"X-Request-ID": "order-77"}) for _ in range(2)]
    for replay in replays:
        assert replay.headers["Idempotent-Replayed"] == "true"
        assert replay.json()["execution_id"] == execution_id
        assert replay.json()["status"] == "cancelled", replay.text
    assert replays[0].json()["estimated_duration"] == replays[1].json()["estimated_duration"]


async def test_the_client_id_is_recorded_and_shown_in_status(edge: Edge) -> None:
    async with await edge.client() as client:
        accepted = await client.post(EXECUTE, json={"workflow": inverted_image(3)},
                                     headers={"X-Client-ID": "mobile-app/4.2"})
        status = await client.get(f"/v1/workflows/{accepted.json()['execution_id']}/status")
    assert status.json()["client_id"] == "mobile-app/4.2"


# --------------------------------------------------------------------------- /metrics


async def test_metrics_are_refused_beyond_loopback_without_a_token(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, embedded_worker=False, webhook_dispatcher=False,
                        database_url=None, host="0.0.0.0")
    async for running in _running(settings):
        async with await running.client() as client:
            assert_error(await client.get("/metrics"), 403, "METRICS_DISABLED")


async def test_a_non_ascii_metrics_token_is_refused_not_a_crash(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, embedded_worker=False, webhook_dispatcher=False,
                        database_url=None, metrics_token="s3cret")
    async for running in _running(settings):
        transport = httpx.ASGITransport(app=running.app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            for given in (b"Bearer \xe9", "Bearer s3cret\u00e9".encode()):
                assert_error(await client.get("/metrics", headers={b"Authorization": given}),
                             401, "UNAUTHORIZED")


async def test_a_non_ascii_download_signature_is_refused_not_a_crash(edge: Edge) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=edge.app),
                                 base_url="http://test") as client:
        response = await client.get("/files/outputs/x.png?expires=9999999999&signature=%C3%A9")
    assert response.status_code in (401, 403), response.text


# --------------------------------------------------------------------------- links


@pytest.mark.parametrize("trusted", [["*"], ["*.trusted.example"], ["*", "api.example"]])
async def test_a_wildcard_trusted_host_never_makes_links_follow_the_host_header(
        tmp_path: Path, trusted: list[str]) -> None:
    settings = Settings(data_dir=tmp_path, embedded_worker=False, webhook_dispatcher=False,
                        database_url=None, trusted_hosts=trusted)
    async for running in _running(settings):
        async with await running.client() as client:
            for host in ("evil.example", "evil.trusted.example"):
                response = await client.post(EXECUTE, headers={"Host": host},
                                             json={"workflow": {}})
                link = response.json().get("documentation_url", "")
                assert host not in link, response.text
            if "api.example" in trusted:
                named = await client.post(EXECUTE, headers={"Host": "api.example"},
                                          json={"workflow": {}})
                assert named.json()["documentation_url"].startswith("http://api.example/")
