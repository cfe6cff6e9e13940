"""A tenant who attacks the HTTP edge itself: oversized and slow bodies, lying Host headers,
loose types and numbers JSON cannot carry. Each case failed before its fix."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from comfy_serverless.engine.comfyui.installer import EngineLayout
from comfy_serverless.testing import LocalService
from tests.helpers import submit, wait_until_finished
from tests.workflows import inverted_image

EXECUTE = "/v1/workflows/execute"
MEGABYTE = 1024 * 1024
SHORT_TIMEOUT = 1.0  # seconds, for the edge service's header, body and keep-alive timeouts
METRICS_TOKEN = "metrics-scraper-token"


def _assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["status"] == "error"
    assert body["error_code"] == code
    assert isinstance(body["details"], dict)
    return body


async def _open(base_url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = base_url.removeprefix("http://").rsplit(":", 1)
    return await asyncio.open_connection(host, int(port))


async def _raw_answer(reader: asyncio.StreamReader, timeout: float) -> tuple[int, str]:
    """The status and body of the answer on a raw connection, read until the server closes."""
    raw = await asyncio.wait_for(reader.read(), timeout)
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body.decode()


def _head(method: str, path: str, base_url: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {base_url.removeprefix('http://')}",
             *(f"{name}: {value}" for name, value in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def _closed_within(reader: asyncio.StreamReader, timeout: float) -> bytes:
    """What the server sent before it closed the connection; fails if it is still open."""
    try:
        return await asyncio.wait_for(reader.read(), timeout)
    except TimeoutError:
        raise AssertionError(f"the connection was still open after {timeout}s") from None


# --------------------------------------------------------------------------- bodies


async def test_a_chunked_body_past_the_limit_is_refused_as_it_streams(
    service: LocalService, tenant_a_key: str,
) -> None:
    """12 MB with no Content-Length (Transfer-Encoding: chunked) against the 10 MB limit."""
    reader, writer = await _open(service.base_url)
    writer.write(_head("POST", EXECUTE, service.base_url, {
        "Authorization": f"Bearer {tenant_a_key}", "Content-Type": "application/json",
        "Transfer-Encoding": "chunked"}))
    answer = asyncio.create_task(_raw_answer(reader, 60))
    # A valid body: a workflow, then 12 MB of the whitespace JSON allows.
    chunks = [json.dumps({"workflow": inverted_image(4)}).encode(), *[b" " * 65536] * 192]
    try:
        for chunk in chunks:
            if answer.done():
                break
            writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()
    except ConnectionError:
        pass  # the server answered and closed while the body was still coming
    status, body = await answer
    writer.close()
    assert status == 413, body
    assert json.loads(body)["error_code"] == "PAYLOAD_TOO_LARGE"


@pytest.mark.parametrize("framing", [{"Content-Length": str(5 * MEGABYTE)},
                                     {"Transfer-Encoding": "chunked"}])
async def test_an_unauthenticated_body_is_refused_before_it_is_read(
    service: LocalService, framing: dict[str, str],
) -> None:
    """The 401 comes while the body has not even started: nothing waits for it."""
    reader, writer = await _open(service.base_url)
    writer.write(_head("POST", EXECUTE, service.base_url,
                       {"Content-Type": "application/json", **framing}))
    await writer.drain()
    status, body = await _raw_answer(reader, 10)
    writer.close()
    assert status == 401, body
    assert json.loads(body)["error_code"] == "UNAUTHORIZED"


async def test_a_refused_body_carries_the_keys_rate_limit(
    service: LocalService, tenant_a: httpx.AsyncClient,
) -> None:
    response = await tenant_a.post(EXECUTE, content=b"{" + b" " * (11 * MEGABYTE) + b"}",
                                   headers={"Content-Type": "application/json"})
    _assert_error(response, 413, "PAYLOAD_TOO_LARGE")
    assert int(response.headers["X-RateLimit-Remaining"]) <= int(
        response.headers["X-RateLimit-Limit"])


async def test_remaining_never_exceeds_the_limit(service: LocalService) -> None:
    """A rested basic key may burst rpm + burst_allowance (15): that is its Limit."""
    key = service.new_key("--tier", "basic")
    async with httpx.AsyncClient(base_url=service.base_url, timeout=30,
                                 headers={"Authorization": f"Bearer {key}"}) as client:
        for _ in range(3):
            response = await client.get("/v1/queue/status")
            assert response.status_code == 200, response.text
            limit = int(response.headers["X-RateLimit-Limit"])
            assert int(response.headers["X-RateLimit-Remaining"]) <= limit
            assert limit == 15


# --------------------------------------------------------------------------- types and numbers


@pytest.mark.parametrize("priority", ["5", True, 5.0, "high"])
async def test_the_specs_integers_are_integers(
    tenant_a: httpx.AsyncClient, priority: object,
) -> None:
    response = await tenant_a.post(EXECUTE, json={
        "workflow": inverted_image(1), "execution_config": {"priority": priority}})
    body = _assert_error(response, 400, "INVALID_REQUEST")
    assert "execution_config.priority" in str(body["details"])


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999", "-1e999"])
async def test_non_finite_numbers_are_refused_anywhere_in_a_body(
    tenant_a: httpx.AsyncClient, literal: str,
) -> None:
    nodes = json.dumps(inverted_image(2))
    body = f'{{"workflow": {{"nodes": {nodes}, "metadata": {{"score": [1, {literal}]}}}}}}'
    response = await tenant_a.post(EXECUTE, content=body,
                                   headers={"Content-Type": "application/json"})
    refused = _assert_error(response, 400, "INVALID_REQUEST")
    assert "workflow.metadata.score.1" in str(refused["details"]), refused


# --------------------------------------------------------------------------- hosts


async def test_absolute_urls_never_follow_the_hosts_header(
    service: LocalService, tenant_a: httpx.AsyncClient,
) -> None:
    evil = {"Host": "evil.example"}
    refused = await tenant_a.post(EXECUTE, headers=evil, json={"workflow": {
        "1": {"class_type": "NoSuchNode", "inputs": {}}}})
    link = refused.json()["documentation_url"]
    assert link.startswith(service.base_url + "/errors/"), link
    execution_id = await submit(tenant_a, inverted_image(3))
    assert (await wait_until_finished(tenant_a, execution_id))["status"] == "completed"
    results = await tenant_a.get(f"/v1/workflows/{execution_id}/results", headers=evil)
    [output] = results.json()["results"]["outputs"]
    assert output["storage"]["url"].startswith(service.base_url + "/"), output


# --------------------------------------------------------------------------- a strict edge


@pytest.fixture(scope="module")
def edge_service(engine_layout: EngineLayout, tmp_path_factory: pytest.TempPathFactory
                 ) -> Iterator[LocalService]:
    """An API-only service with short server timeouts, trusted hosts and a metrics token."""
    env = {"COMFY_SERVERLESS_EMBEDDED_WORKER": "false",
           "COMFY_SERVERLESS_TRUSTED_HOSTS": '["127.0.0.1", "*.trusted.example"]',
           "COMFY_SERVERLESS_PUBLIC_BASE_URL": "https://api.trusted.example",
           "COMFY_SERVERLESS_HTTP_HEADER_TIMEOUT": str(SHORT_TIMEOUT),
           "COMFY_SERVERLESS_HTTP_BODY_TIMEOUT": str(SHORT_TIMEOUT),
           "COMFY_SERVERLESS_HTTP_KEEP_ALIVE_TIMEOUT": "1",
           "COMFY_SERVERLESS_METRICS_TOKEN": METRICS_TOKEN}
    data_dir: Path = tmp_path_factory.mktemp("edge-service")
    with LocalService.start(data_dir, engine_layout.root, extra_env=env) as running:
        yield running


async def test_untrusted_hosts_are_refused(edge_service: LocalService) -> None:
    async with httpx.AsyncClient(base_url=edge_service.base_url, timeout=10) as client:
        _assert_error(await client.get("/healthz", headers={"Host": "evil.example"}),
                      400, "HOST_NOT_ALLOWED")
        assert (await client.get("/healthz", headers={"Host": "api.trusted.example"})
                ).status_code == 200
        assert (await client.get("/healthz")).status_code == 200


async def test_documentation_urls_use_the_public_base_url(edge_service: LocalService) -> None:
    async with httpx.AsyncClient(base_url=edge_service.base_url, timeout=10) as client:
        refused = await client.get("/v1/queue/status")
    assert refused.json()["details"]["get_key_url"] == "/errors/UNAUTHORIZED"
    key = edge_service.new_key("--tier", "pro")
    async with httpx.AsyncClient(base_url=edge_service.base_url, timeout=10,
                                 headers={"Authorization": f"Bearer {key}"}) as client:
        response = await client.post(EXECUTE, json={"workflow": {
            "1": {"class_type": "NoSuchNode", "inputs": {}}}})
    assert response.json()["documentation_url"].startswith("https://api.trusted.example/")


async def test_an_idle_new_connection_is_closed(edge_service: LocalService) -> None:
    reader, writer = await _open(edge_service.base_url)
    await _closed_within(reader, 10 * SHORT_TIMEOUT)
    writer.close()


async def test_trickled_headers_are_cut_off(edge_service: LocalService) -> None:
    reader, writer = await _open(edge_service.base_url)
    closed = asyncio.create_task(_closed_within(reader, 10 * SHORT_TIMEOUT))
    head = _head("GET", "/healthz", edge_service.base_url, {"X-Slow": "a" * 200})
    assert await _trickle(writer, head, until=closed) < len(head)
    assert await closed == b""
    writer.close()


async def test_a_trickled_body_gets_408_and_is_cut_off(edge_service: LocalService) -> None:
    key = edge_service.new_key("--tier", "pro")
    reader, writer = await _open(edge_service.base_url)
    writer.write(_head("POST", EXECUTE, edge_service.base_url, {
        "Authorization": f"Bearer {key}", "Content-Type": "application/json",
        "Content-Length": "1000"}))
    answer = asyncio.create_task(_raw_answer(reader, 10 * SHORT_TIMEOUT))
    assert await _trickle(writer, b" " * 1000, until=answer) < 1000
    status, body = await answer
    writer.close()
    assert status == 408, body
    assert json.loads(body)["error_code"] == "REQUEST_TIMEOUT"


async def _trickle(writer: asyncio.StreamWriter, data: bytes, *, until: asyncio.Task[Any]
                   ) -> int:
    """Send `data` a byte every 50 ms until `until` ends or the server hangs up; the count sent."""
    for sent in range(len(data)):
        if until.done():
            return sent
        try:
            writer.write(data[sent:sent + 1])
            await writer.drain()
        except ConnectionError:
            return sent
        await asyncio.wait([until], timeout=0.05)
    return len(data)


async def test_metrics_need_the_token_when_one_is_set(edge_service: LocalService) -> None:
    async with httpx.AsyncClient(base_url=edge_service.base_url, timeout=10) as client:
        _assert_error(await client.get("/metrics"), 401, "UNAUTHORIZED")
        _assert_error(await client.get("/metrics", headers={"Authorization": "Bearer wrong"}),
                      401, "UNAUTHORIZED")
        scraped = await client.get("/metrics",
                                   headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert scraped.status_code == 200
    assert scraped.headers["Content-Type"].startswith("text/plain")
