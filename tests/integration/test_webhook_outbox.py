"""The outbox on SQLite and PostgreSQL: the dispatcher's claim keeps a per-destination cap on
deliveries in flight (issue #12 item 20), whatever path or query tells the URLs apart, and
the log keeps the start of any reply (item 19), whatever bytes it holds."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from comfy_serverless.storage.local import LocalStorage
from comfy_serverless.storage.signing import UrlSigner
from comfy_serverless.store.store import Store
from comfy_serverless.webhooks.dispatcher import DispatcherConfig, WebhookDispatcher
from comfy_serverless.webhooks.ssrf import WebhookPolicy
from tests.outbound import receiver_at, started_execution


async def test_one_destination_never_has_more_than_its_cap_in_flight(store: Store) -> None:
    for n in range(6):
        await started_execution(store, f"https://Slow.example:8443/hook/{n}?n={n}")
    await started_execution(store, "https://slow.example:8443?only-a-query")
    for n in range(2):
        await started_execution(store, f"https://fast.example/hook?n={n}")

    first = await store.webhooks.claim("d1", 60, 20, per_destination=4)
    again = await store.webhooks.claim("d2", 60, 20, per_destination=4)

    hosts = sorted(event.url.lower().split("/")[2].split("?")[0] for event in first)
    assert hosts == ["fast.example"] * 2 + ["slow.example:8443"] * 4
    assert again == [], "a second dispatcher went past the destination's cap"


async def test_a_saturated_destinations_backlog_does_not_hide_the_events_behind_it(
    store: Store
) -> None:
    for n in range(12):
        await started_execution(store, f"https://dead.example/hook/{n}")
    await started_execution(store, "https://alive.example/hook")

    claimed = [await store.webhooks.claim(f"d{n}", 60, 2, per_destination=4)
               for n in range(3)]

    hosts = [[event.url.split("/")[2] for event in batch] for batch in claimed]
    assert hosts == [["dead.example"] * 2, ["dead.example"] * 2, ["alive.example"]]


async def test_any_reply_is_logged_as_text_up_to_the_cap(store: Store, tmp_path: Path) -> None:
    async def binary(request: web.Request) -> web.Response:
        return web.Response(status=200, body=b"ok\x00\xff" + b"z" * 100)

    async with receiver_at(binary) as url:
        execution_id = await started_execution(store, url)
        dispatcher = WebhookDispatcher(store, LocalStorage(tmp_path, UrlSigner("s")),
                                       DispatcherConfig(
            policy=WebhookPolicy(require_https=False, allowed_networks=("127.0.0.1/32",)),
            base_url="http://127.0.0.1:8000", signed_url_ttl=60, reply_max_bytes=10))
        assert await dispatcher.run_once() == 1
        await dispatcher.stop()
    [event], [delivery] = await store.webhooks.log(execution_id)
    assert (event.status, delivery.status_code) == ("delivered", 200)
    assert (delivery.response_body, delivery.response_truncated) == (
        "ok\ufffd\ufffdzzzzzz", True)
