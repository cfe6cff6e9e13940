"""Registered webhook endpoints on SQLite and PostgreSQL: deleting one that has received
events (issue #12 item 21) stops its deliveries at once and keeps the delivery log."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from comfy_serverless.auth.keys import issue_key
from comfy_serverless.storage.local import LocalStorage
from comfy_serverless.storage.signing import UrlSigner
from comfy_serverless.store.store import Store
from comfy_serverless.webhooks.dispatcher import DispatcherConfig, WebhookDispatcher
from comfy_serverless.webhooks.ssrf import WebhookPolicy
from comfy_serverless.webhooks.system_events import announce_maintenance
from tests.outbound import receiver_at

LOOPBACK = WebhookPolicy(require_https=False, allowed_networks=("127.0.0.1/32",))


@pytest.fixture
async def received() -> AsyncIterator[tuple[str, list[bytes]]]:
    bodies: list[bytes] = []

    async def handle(request: web.Request) -> web.Response:
        bodies.append(await request.read())
        return web.Response(status=200)

    async with receiver_at(handle) as url:
        yield url, bodies


async def test_an_endpoint_that_received_events_is_deleted_and_sent_nothing_more(
    store: Store, received: tuple[str, list[bytes]], tmp_path: Path
) -> None:
    url, bodies = received
    key = issue_key("secret", "pro").record
    await store.access.create_api_key(key)
    endpoint_id = await store.webhooks.register(key.id, url, None, ["system.maintenance"], 10)
    assert endpoint_id is not None
    dispatcher = WebhookDispatcher(store, LocalStorage(tmp_path, UrlSigner("s")),
                                   DispatcherConfig(policy=LOOPBACK, base_url="http://x",
                                                    signed_url_ttl=60))
    assert await announce_maintenance(store, "first", None, None, 3) == 1
    assert await dispatcher.run_once() == 1
    await dispatcher.drain()
    assert len(bodies) == 1
    assert await announce_maintenance(store, "second", None, None, 3) == 1

    assert await store.webhooks.unregister(endpoint_id, key.id)

    assert await dispatcher.run_once() == 0
    await dispatcher.stop()
    assert len(bodies) == 1, "a deleted endpoint was still sent an event"
    assert await store.webhooks.endpoints(key.id) == []
    assert (await store.metrics.metric_counts())["webhook_deliveries"] == {"delivered": 1}


async def test_only_the_owner_deletes_an_endpoint(store: Store) -> None:
    owner, other = issue_key("secret", "pro").record, issue_key("secret", "pro").record
    for key in (owner, other):
        await store.access.create_api_key(key)
    endpoint_id = await store.webhooks.register(owner.id, "https://example.com/h", None,
                                                ["*"], 10)
    assert endpoint_id is not None
    assert not await store.webhooks.unregister(endpoint_id, other.id)
    assert [e["id"] for e in await store.webhooks.endpoints(owner.id)] == [endpoint_id]
