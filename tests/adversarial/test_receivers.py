"""A tenant's webhook receiver, played hostile: it answers hugely, never, or rebinds its DNS
name (issue #12 items 19, 20 and 22), and its tenant registers endpoints without end.

Every receiver listens on loopback; nothing here connects anywhere else.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from comfy_serverless.auth.keys import issue_key
from comfy_serverless.storage.local import LocalStorage
from comfy_serverless.storage.signing import UrlSigner
from comfy_serverless.store.store import Store
from comfy_serverless.testing import LocalService, free_port
from comfy_serverless.webhooks.dispatcher import DispatcherConfig, WebhookDispatcher
from comfy_serverless.webhooks.ssrf import UnsafeDestination, WebhookPolicy, check_destination
from tests.helpers import submit, wait_for, wait_until_finished
from tests.outbound import Handler, receiver_at, started_execution, stub_resolver
from workloads.workflows import inverted_image

MB = 1024 * 1024


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for process {pid}")


@contextlib.asynccontextmanager
async def peak_rss(pid: int) -> AsyncIterator[list[int]]:
    """Samples the process's RSS every 5 ms while the block runs; [baseline, peak]."""
    result = [rss_bytes(pid)] * 2

    async def sample() -> None:
        while True:
            result[1] = max(result[1], rss_bytes(pid))
            await asyncio.sleep(0.005)

    sampler = asyncio.create_task(sample())
    try:
        yield result
    finally:
        sampler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampler


async def delivery_log(client: httpx.AsyncClient, execution_id: str) -> list[dict[str, Any]]:
    response = await client.get(f"/v1/workflows/{execution_id}/webhooks")
    assert response.status_code == 200, response.text
    return list(response.json()["events"])


async def test_a_huge_reply_costs_the_service_no_memory_and_is_logged_truncated(
    service: LocalService, tenant_a: httpx.AsyncClient
) -> None:
    sent = [0]

    async def endless(request: web.Request) -> web.StreamResponse:
        await request.read()
        response = web.StreamResponse(status=200)
        await response.prepare(request)
        chunk = b"x" * MB
        with contextlib.suppress(ConnectionError):
            while sent[0] < 512 * MB:  # far more than the service may hold
                await response.write(chunk)
                sent[0] += len(chunk)
        return response

    async with receiver_at(endless) as url, peak_rss(service.process.pid) as rss:
        execution_id = await submit(tenant_a, inverted_image(101),
                                    notification_config={"webhook_url": url})
        await wait_until_finished(tenant_a, execution_id)

        async def both_delivered() -> list[dict[str, Any]] | None:
            events = await delivery_log(tenant_a, execution_id)
            done = [e for e in events if e["status"] in ("delivered", "failed")]
            return events if len(done) == len(events) == 2 else None

        events = await wait_for(both_delivered, timeout=60, what="both deliveries")
    print(f"service RSS {rss[0] / MB:.0f} MB, peak {rss[1] / MB:.0f} MB; "
          f"the receiver sent {sent[0] / MB:.0f} MB")
    assert rss[1] - rss[0] < 50 * MB, f"peak RSS grew by {(rss[1] - rss[0]) / MB:.0f} MB"
    for event in events:
        [attempt] = event["deliveries"]
        assert attempt["status_code"] == 200
        assert attempt["response_truncated"] is True
        assert 0 < len(attempt["response_body"]) <= 4096
        assert set(attempt["response_body"]) == {"x"}


@dataclass
class Stalling:
    """A receiver that takes each delivery and never answers until released."""

    released: asyncio.Event = field(default_factory=asyncio.Event)
    open_now: int = 0
    most_open: int = 0
    taken: int = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        self.taken += 1
        self.open_now += 1
        self.most_open = max(self.most_open, self.open_now)
        try:
            await self.released.wait()
        finally:
            self.open_now -= 1
        return web.Response(status=200)


async def test_a_receiver_that_never_answers_delays_only_its_own_events(
    tenant_a: httpx.AsyncClient, tenant_b: httpx.AsyncClient
) -> None:
    stalling = Stalling()
    arrivals: dict[str, float] = {}

    async def fast(request: web.Request) -> web.StreamResponse:
        event = await request.json()
        arrivals[event["event_type"]] = time.monotonic()
        return web.Response(status=200)

    async with receiver_at(stalling.handle) as slow_url, receiver_at(fast) as fast_url:
        try:
            for color in range(6):
                await submit(tenant_a, inverted_image(110 + color),
                             notification_config={"webhook_url": slow_url})

            async def stalled() -> bool:
                return stalling.open_now >= 4

            await wait_for(stalled, timeout=60, what="the slow receiver to hold deliveries")
            execution_id = await submit(tenant_b, inverted_image(120),
                                        notification_config={"webhook_url": fast_url})
            await wait_until_finished(tenant_b, execution_id)
            finished = time.monotonic()

            async def completed_arrived() -> bool:
                return "execution.completed" in arrivals

            await wait_for(completed_arrived, timeout=3, what="the other tenant's completed event")
            assert arrivals["execution.started"] <= arrivals["execution.completed"]
            print(f"the other tenant's execution.completed arrived "
                  f"{arrivals['execution.completed'] - finished:.3f}s after it finished, "
                  f"{stalling.open_now} deliveries held by the slow receiver")
            assert arrivals["execution.completed"] - finished < 3
            assert stalling.most_open <= 4, "more deliveries in flight to one URL than its cap"
        finally:
            stalling.released.set()  # the service's deliveries end


async def test_endpoints_per_key_are_capped(tenant_b: httpx.AsyncClient) -> None:
    created: list[str] = []
    try:
        for _ in range(12):
            response = await tenant_b.post("/v1/webhooks", json={
                "url": "http://127.0.0.1:9/hook", "events": ["system.maintenance"]})
            if response.status_code != 201:
                break
            created.append(response.json()["id"])
        listed = (await tenant_b.get("/v1/webhooks")).json()["webhooks"]
        assert response.status_code == 409, response.text
        body = response.json()
        assert (body["status"], body["error_code"]) == ("error", "WEBHOOK_ENDPOINT_LIMIT")
        assert body["details"] == {"max_endpoints": 10}
        assert len(listed) == 10
    finally:
        for endpoint_id in created:
            await tenant_b.delete(f"/v1/webhooks/{endpoint_id}")


# --------------------------------------------------------------------------- DNS rebinding


async def test_a_rebinding_host_name_is_delivered_to_the_address_that_was_checked(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The name answers 127.0.0.1 (allowed) when checked, then 127.0.0.2 (refused: not in the
    allowed networks). The delivery must go to 127.0.0.1, with the name in its Host header."""
    port = free_port()
    hits: dict[str, list[str]] = {"127.0.0.1": [], "127.0.0.2": []}

    def recorder(address: str) -> Handler:
        async def handle(request: web.Request) -> web.StreamResponse:
            hits[address].append(request.headers["Host"])
            return web.Response(status=200)
        return handle

    answers = iter(["127.0.0.1"])
    stub_resolver(monkeypatch, "rebind.test", lambda name: next(answers, "127.0.0.2"))
    async with (receiver_at(recorder("127.0.0.1"), "127.0.0.1", port),
                receiver_at(recorder("127.0.0.2"), "127.0.0.2", port)):
        await started_execution(store, f"http://rebind.test:{port}/hook")
        dispatcher = WebhookDispatcher(store, LocalStorage(tmp_path, UrlSigner("s")),
                                       DispatcherConfig(
            policy=WebhookPolicy(require_https=False, allowed_networks=("127.0.0.1/32",)),
            base_url="http://127.0.0.1:8000", signed_url_ttl=60))
        assert await dispatcher.run_once() == 1
        await dispatcher.stop()
    assert hits == {"127.0.0.1": [f"rebind.test:{port}"], "127.0.0.2": []}


# --------------------------------------------------------------------------- stalling DNS


async def test_a_name_server_that_never_answers_holds_no_shared_thread(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tenant's names whose lookups never return: each URL fails after the lookup timeout,
    and the event loop's default thread pool (storage, output conversion) stays free."""
    released = threading.Event()

    def stall(name: str) -> str:
        released.wait(30)
        return "127.0.0.1"

    stub_resolver(monkeypatch, "stall.test", stall)
    policy = WebhookPolicy(require_https=False, allowed_networks=("127.0.0.1/32",),
                           resolve_timeout=0.5)
    try:
        lookups = [asyncio.create_task(check_destination(f"http://u{n}.stall.test/hook", policy))
                   for n in range(40)]
        await asyncio.sleep(0)  # every lookup has started
        started = time.monotonic()
        assert await asyncio.wait_for(asyncio.to_thread(lambda: "done"), 2) == "done"
        assert time.monotonic() - started < 1.0, "default-pool work waited for DNS lookups"
        results = await asyncio.wait_for(
            asyncio.gather(*lookups, return_exceptions=True), 5)
        assert all(isinstance(result, UnsafeDestination) for result in results), results
        assert "did not resolve within 0.5s" in str(results[0])
    finally:
        released.set()


# --------------------------------------------------------------------------- many spellings


def _dispatcher(store: Store, tmp_path: Path, *, timeout: float = 30, concurrency: int = 100,
                per_destination: int = 4) -> WebhookDispatcher:
    return WebhookDispatcher(store, LocalStorage(tmp_path, UrlSigner("s")), DispatcherConfig(
        policy=WebhookPolicy(require_https=False, allowed_networks=("127.0.0.1/32",)),
        base_url="http://127.0.0.1:8000", signed_url_ttl=60, timeout=timeout,
        concurrency=concurrency, per_destination=per_destination))


async def test_spellings_of_one_receiver_are_one_destination(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """User info, case, a trailing dot, a path or a query: one receiver, one cap."""
    stub_resolver(monkeypatch, "tenant.test", lambda name: "127.0.0.1")
    stalling = Stalling()
    port = free_port()
    spellings = [f"http://{host}:{port}/hook{tail}" for host, tail in [
        ("hook.tenant.test", ""), ("a@hook.tenant.test", ""), ("b:pw@HOOK.tenant.test", "?y=1"),
        ("hook.tenant.test.", ""), ("Hook.Tenant.Test", "#f"), ("hook.tenant.test", "?z")]]
    async with receiver_at(stalling.handle, "127.0.0.1", port):
        for url in spellings:
            await started_execution(store, url)
        dispatcher = _dispatcher(store, tmp_path, per_destination=2)
        try:
            assert await dispatcher.run_once() == 2

            async def held() -> bool:
                return stalling.open_now == 2

            await wait_for(held, timeout=10, what="the receiver to hold two deliveries")
            assert await dispatcher.run_once() == 0, "another spelling got past the cap"
        finally:
            stalling.released.set()
            await dispatcher.stop()
    assert stalling.most_open == 2


async def test_one_tenant_with_many_receivers_holds_only_its_share_of_the_slots(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Wildcard DNS gives one tenant any number of destinations; its in-flight deliveries
    are capped per key (default 8), so another tenant's event still goes out at once."""
    stub_resolver(monkeypatch, "tenant.test", lambda name: "127.0.0.1")
    stalling = Stalling()
    arrived = asyncio.Event()

    async def fast(request: web.Request) -> web.StreamResponse:
        await request.read()
        arrived.set()
        return web.Response(status=200)

    port = free_port()
    key = issue_key("secret", "basic").record
    await store.access.create_api_key(key)
    async with receiver_at(stalling.handle, "127.0.0.1", port), receiver_at(fast) as fast_url:
        for n in range(12):
            await started_execution(store, f"http://u{n}.tenant.test:{port}/hook", key.id)
        await started_execution(store, fast_url)
        dispatcher = _dispatcher(store, tmp_path, concurrency=10)
        try:
            async def delivered() -> bool:
                await dispatcher.run_once()
                return arrived.is_set()

            await wait_for(delivered, timeout=3, what="the other tenant's event")
            assert stalling.most_open <= 8, "one key held more than its share"
        finally:
            stalling.released.set()
            await dispatcher.stop()


async def test_a_slow_lookup_counts_within_the_delivery_timeout(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    released = threading.Event()

    def stall(name: str) -> str:
        released.wait(30)
        return "127.0.0.1"

    stub_resolver(monkeypatch, "slowdns.test", stall)
    execution_id = await started_execution(store, "http://hook.slowdns.test:9/hook")
    dispatcher = _dispatcher(store, tmp_path, timeout=0.5)
    try:
        started = time.monotonic()
        assert await dispatcher.run_once() == 1
        await dispatcher.drain()
        assert time.monotonic() - started < 2.0, "the lookup held the slot past the timeout"
    finally:
        released.set()
        await dispatcher.stop()
    _, deliveries = await store.webhooks.log(execution_id)
    assert deliveries[0].error is not None
    assert "TimeoutError" in deliveries[0].error
