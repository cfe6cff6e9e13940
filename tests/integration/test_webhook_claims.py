"""The dispatcher's claim on SQLite and PostgreSQL: a per-destination cap on deliveries in
flight (issue #12 item 20), whatever path or query tells the URLs apart."""

from __future__ import annotations

from comfy_serverless.store.store import Store
from tests.outbound import started_execution


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
