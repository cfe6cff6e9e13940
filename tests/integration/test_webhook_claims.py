"""The dispatcher's claim on SQLite and PostgreSQL: a per-destination cap on deliveries in
flight (issue #12 item 20), whatever path or query tells the URLs apart."""

from __future__ import annotations

import time

from comfy_serverless.auth.keys import issue_key
from comfy_serverless.executions.submission import new_execution_id
from comfy_serverless.store.records import NewExecution
from comfy_serverless.store.store import Store
from tests.workflows import inverted_image


async def _started_execution(store: Store, url: str) -> None:
    key = issue_key("secret", "basic").record
    await store.create_api_key(key)
    await store.create_execution(NewExecution(
        id=new_execution_id(), api_key_id=key.id, priority=5, workflow=inverted_image(1),
        options={}, signature="s", webhook_url=url, client_id=None, submitted_at=time.time(),
        max_attempts=1, total_nodes=3, webhook_secret=None, webhook_max_retries=3))
    assert await store.claim_next("w1", 30) is not None  # writes execution.started


async def test_one_destination_never_has_more_than_its_cap_in_flight(store: Store) -> None:
    for n in range(6):
        await _started_execution(store, f"https://Slow.example:8443/hook/{n}?n={n}")
    await _started_execution(store, "https://slow.example:8443?only-a-query")
    for n in range(2):
        await _started_execution(store, f"https://fast.example/hook?n={n}")

    first = await store.webhooks.claim("d1", 60, 20, per_destination=4)
    again = await store.webhooks.claim("d2", 60, 20, per_destination=4)

    hosts = sorted(event.url.lower().split("/")[2].split("?")[0] for event in first)
    assert hosts == ["fast.example"] * 2 + ["slow.example:8443"] * 4
    assert again == [], "a second dispatcher went past the destination's cap"
