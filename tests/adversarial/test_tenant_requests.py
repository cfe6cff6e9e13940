"""A tenant who attacks the HTTP edge itself: oversized and slow bodies, lying Host headers,
loose types and numbers JSON cannot carry. Each case failed before its fix."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from comfy_serverless.engine.comfyui.installer import EngineLayout
from comfy_serverless.testing import LocalService
from tests.helpers import assert_error, submit, wait_until_finished
from workloads.workflows import inverted_image

EXECUTE = "/v1/workflows/execute"
MEGABYTE = 1024 * 1024
SHORT_TIMEOUT = 1.0  # seconds, for the edge service's header, body and keep-alive timeouts
METRICS_TOKEN = "metrics-scraper-token"
CYCLE = {"1": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}}}  # refused anyway


@dataclass(frozen=True)
class RawAnswer:
    status: int | None  # None: the server hung up without answering
    headers: dict[str, str]
    body: str
    sent: int  # bytes of the body chunks that went out before the server answered or hung up


def _exchange(base_url: str, head: bytes, chunks: Iterable[bytes], *, pause: float = 0.0,
              timeout: float = 10.0) -> RawAnswer:
    """One request on a raw socket: the head, then the chunks (a `pause` apart), stopped as
    soon as the server answers or hangs up. Blocking sockets, so an answer that arrives just
    before the server's reset is still read."""
    host, port = base_url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=timeout) as sock, \
            ThreadPoolExecutor(1) as pool:
        answered = threading.Event()
        sending = pool.submit(_send, sock, head, chunks, pause, answered)
        try:
            status, headers, body = _read_answer(sock)
        finally:
            answered.set()
        return RawAnswer(status, headers, body, sending.result())


def _send(sock: socket.socket, head: bytes, chunks: Iterable[bytes], pause: float,
          answered: threading.Event) -> int:
    sent = 0
    try:
        sock.sendall(head)
        for chunk in chunks:
            if answered.wait(pause):
                break
            sock.sendall(chunk)
            sent += len(chunk)
    except OSError:
        pass  # the server hung up
    return sent


def _read_answer(sock: socket.socket) -> tuple[int | None, dict[str, str], str]:
    raw = b""
    try:
        while b"\r\n\r\n" not in raw:
            received = sock.recv(65536)
            if not received:
                return None, {}, raw.decode(errors="replace")
            raw += received
        head, _, body = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        pairs = (line.partition(":") for line in lines[1:])
        headers = {name.strip().lower(): value.strip() for name, _, value in pairs}
        while len(body) < int(headers.get("content-length", 0)):
            body += sock.recv(65536)
    except TimeoutError:
        raise AssertionError(f"still open, unanswered, after the timeout: {raw!r}") from None
    return int(lines[0].split(" ")[1]), headers, body.decode()


def _head(method: str, path: str, base_url: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {base_url.removeprefix('http://')}",
             *(f"{name}: {value}" for name, value in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


# --------------------------------------------------------------------------- bodies


async def test_a_chunked_body_past_the_limit_is_refused_as_it_streams(
    service: LocalService, tenant_a_key: str,
) -> None:
    """12 MB with no Content-Length (Transfer-Encoding: chunked) against the 10 MB limit: a
    valid body, a workflow followed by the whitespace JSON allows."""
    head = _head("POST", EXECUTE, service.base_url, {
        "Authorization": f"Bearer {tenant_a_key}", "Content-Type": "application/json",
        "Transfer-Encoding": "chunked"})
    parts = [json.dumps({"workflow": inverted_image(4)}).encode(), *[b" " * 65536] * 192]
    chunks = [b"%x\r\n%s\r\n" % (len(part), part) for part in parts] + [b"0\r\n\r\n"]
    answer = await asyncio.to_thread(_exchange, service.base_url, head, chunks, timeout=60)
    assert answer.status == 413, answer
    refused = json.loads(answer.body)
    assert refused["error_code"] == "PAYLOAD_TOO_LARGE"
    assert refused["details"]["received_bytes"] < 11 * MEGABYTE, "refused as it streamed"


@pytest.mark.parametrize("framing", [{"Content-Length": str(5 * MEGABYTE)},
                                     {"Transfer-Encoding": "chunked"}])
async def test_an_unauthenticated_body_is_refused_before_it_is_read(
    service: LocalService, framing: dict[str, str],
) -> None:
    """The 401 comes while the body has not even started: nothing waits for it."""
    head = _head("POST", EXECUTE, service.base_url,
                 {"Content-Type": "application/json", **framing})
    answer = await asyncio.to_thread(_exchange, service.base_url, head, [])
    assert answer.status == 401, answer
    assert json.loads(answer.body)["error_code"] == "UNAUTHORIZED"


async def test_a_refused_body_carries_the_keys_rate_limit(
    service: LocalService, tenant_a_key: str,
) -> None:
    head = _head("POST", EXECUTE, service.base_url, {
        "Authorization": f"Bearer {tenant_a_key}", "Content-Type": "application/json",
        "Content-Length": str(11 * MEGABYTE)})
    answer = await asyncio.to_thread(_exchange, service.base_url, head, [])
    assert answer.status == 413, answer
    assert int(answer.headers["x-ratelimit-remaining"]) <= int(
        answer.headers["x-ratelimit-limit"])


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
    body = assert_error(response, 400, "INVALID_REQUEST")
    assert "execution_config.priority" in str(body["details"])


@pytest.mark.parametrize("route", [EXECUTE, "/v1/workflows/convert"])
@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999", "-1e999"])
async def test_non_finite_numbers_are_refused_anywhere_in_a_body(
    tenant_a: httpx.AsyncClient, literal: str, route: str,
) -> None:
    nodes = json.dumps(inverted_image(2))
    body = f'{{"workflow": {{"nodes": {nodes}, "metadata": {{"score": [1, {literal}]}}}}}}'
    response = await tenant_a.post(route, content=body,
                                   headers={"Content-Type": "application/json"})
    refused = assert_error(response, 400, "INVALID_REQUEST")
    assert "workflow.metadata.score.1" in str(refused["details"]), refused


# --------------------------------------------------------------------------- hosts


async def test_absolute_urls_never_follow_the_hosts_header(
    service: LocalService, tenant_a: httpx.AsyncClient,
) -> None:
    evil = {"Host": "evil.example"}
    refused = await tenant_a.post(EXECUTE, headers=evil, json={"workflow": CYCLE})
    link = refused.json()["documentation_url"]
    assert link.startswith(service.base_url + "/errors/"), link
    execution_id = await submit(tenant_a, inverted_image(3))
    assert (await wait_until_finished(tenant_a, execution_id))["status"] == "completed"
    results = await tenant_a.get(f"/v1/workflows/{execution_id}/results", headers=evil)
    [output] = results.json()["results"]["outputs"]
    assert output["storage"]["url"].startswith(service.base_url + "/"), output
    async with tenant_a.stream("GET", f"/v1/workflows/{execution_id}/events",
                               headers=evil) as stream:
        events = "".join([chunk async for chunk in stream.aiter_text()])
    urls = re.findall(r'https?://[^"\s]+', events)
    assert urls, events
    assert all(url.startswith(service.base_url + "/") for url in urls), urls


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
        assert_error(await client.get("/healthz", headers={"Host": "evil.example"}),
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
        response = await client.post(EXECUTE, headers={"Host": "api.trusted.example"},
                                     json={"workflow": CYCLE})
    assert response.json()["documentation_url"].startswith("https://api.trusted.example/")


async def test_an_idle_new_connection_is_closed(edge_service: LocalService) -> None:
    answer = await asyncio.to_thread(_exchange, edge_service.base_url, b"", [])
    assert answer.status is None, answer


async def test_trickled_headers_are_cut_off(edge_service: LocalService) -> None:
    head = _head("GET", "/healthz", edge_service.base_url, {"X-Slow": "a" * 200})
    answer = await asyncio.to_thread(_exchange, edge_service.base_url, b"",
                                     [bytes([byte]) for byte in head], pause=0.05)
    assert answer.status is None, answer
    assert answer.sent < len(head)


async def test_a_trickled_body_gets_408_and_is_cut_off(edge_service: LocalService) -> None:
    key = edge_service.new_key("--tier", "pro")
    head = _head("POST", EXECUTE, edge_service.base_url, {
        "Authorization": f"Bearer {key}", "Content-Type": "application/json",
        "Content-Length": "1000"})
    answer = await asyncio.to_thread(_exchange, edge_service.base_url, head, [b" "] * 1000,
                                     pause=0.05)
    assert answer.status == 408, answer
    assert json.loads(answer.body)["error_code"] == "REQUEST_TIMEOUT"
    assert answer.sent < 1000


async def test_metrics_need_the_token_when_one_is_set(edge_service: LocalService) -> None:
    async with httpx.AsyncClient(base_url=edge_service.base_url, timeout=10) as client:
        assert_error(await client.get("/metrics"), 401, "UNAUTHORIZED")
        assert_error(await client.get("/metrics", headers={"Authorization": "Bearer wrong"}),
                      401, "UNAUTHORIZED")
        scraped = await client.get("/metrics",
                                   headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert scraped.status_code == 200
    assert scraped.headers["Content-Type"].startswith("text/plain")
