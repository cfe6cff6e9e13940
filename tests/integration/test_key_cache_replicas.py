"""Two API replicas on one database, each with its own key cache: a change made through one
(revocation, rotation, new limits) or straight in the table (a tier) reaches the other at
once on PostgreSQL (NOTIFY), and within the 1 s lifetime of a cached row on SQLite."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import pytest

from comfy_serverless.api.app import create_app
from comfy_serverless.auth.keys import issue_key
from comfy_serverless.services import Services
from comfy_serverless.settings import Settings
from tests.conftest import fresh_postgres_schema

UNKNOWN_STATUS = "/v1/workflows/exec_unknown/status"
# The bound the documentation promises where no notification comes (SQLite).
FALLBACK_BOUND = 1.0
# A cached row lives at most the bound; seeing it gone also takes a poll and a request,
# which on a busy 2-core CI machine can take a few hundred milliseconds.
SCHEDULING_SLACK = 0.5


class Replica:
    def __init__(self, services: Services, client: httpx.AsyncClient) -> None:
        self.services = services
        self.client = client

    async def status_as(self, plaintext: str) -> httpx.Response:
        return await self.client.get(UNKNOWN_STATUS,
                                     headers={"Authorization": f"Bearer {plaintext}"})


async def _replicas(stack: AsyncExitStack, data_dir: Path, database_url: str | None
                    ) -> list[Replica]:
    replicas = []
    for _ in range(2):
        settings = Settings(data_dir=data_dir, embedded_worker=False,
                            webhook_dispatcher=False, database_url=database_url)
        app = create_app(settings)
        await stack.enter_async_context(app.router.lifespan_context(app))
        client = await stack.enter_async_context(httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://test"))
        replicas.append(Replica(app.state.services, client))
    return replicas


@pytest.fixture(params=["sqlite", "postgres"])
async def replicas(request: pytest.FixtureRequest, tmp_path: Path
                   ) -> AsyncIterator[list[Replica]]:
    async with AsyncExitStack() as stack:
        url = None
        if request.param == "postgres":
            url = await stack.enter_async_context(fresh_postgres_schema())
        yield await _replicas(stack, tmp_path, url)


async def _admin_and_user(replica: Replica, tier: str = "pro") -> tuple[str, str, str]:
    admin = issue_key("secret", "enterprise", is_admin=True)
    user = issue_key("secret", tier)
    for issued in (admin, user):
        await replica.services.store.access.create_api_key(issued.record)
    return admin.plaintext, user.plaintext, user.record.id


async def _seconds_until(condition: Callable[[], Awaitable[bool]], bound: float) -> float:
    """How long until `condition` holds, polled every 20 ms; fails past `bound`."""
    started = time.monotonic()
    while not await condition():
        elapsed = time.monotonic() - started
        assert elapsed < bound, f"still not seen after {elapsed:.2f} s"
        await asyncio.sleep(0.02)
    return time.monotonic() - started


def _listening(replica: Replica) -> Callable[[], Awaitable[bool]]:
    async def listening() -> bool:
        return replica.services.keys.cache.listening
    return listening


def _bound(replica: Replica) -> float:
    """On PostgreSQL the change arrives by NOTIFY: well within the 1 s that B's entry,
    cached just before, would otherwise live."""
    if replica.services.store.dialect == "sqlite":  # plus the poll and a loaded machine
        return FALLBACK_BOUND + SCHEDULING_SLACK
    return FALLBACK_BOUND / 2


async def test_a_key_revoked_through_replica_a_is_refused_on_replica_b_within_the_bound(
    replicas: list[Replica],
) -> None:
    a, b = replicas
    admin, user, user_id = await _admin_and_user(a)
    if b.services.store.dialect == "postgres":  # what this proves there is the NOTIFY:
        await _seconds_until(_listening(b), 10)  # a LISTEN coming up empties the cache
    assert (await b.status_as(user)).status_code == 404  # B has cached the row
    assert b.services.keys.cache.sizes[0] >= 1
    revoked = await a.client.delete(f"/v1/admin/keys/{user_id}",
                                    headers={"Authorization": f"Bearer {admin}"})
    assert revoked.status_code == 200, revoked.text
    assert (await a.status_as(user)).status_code == 401  # A evicted at once

    async def refused_on_b() -> bool:
        return (await b.status_as(user)).status_code == 401

    await _seconds_until(refused_on_b, _bound(b))
    assert "revoked" in (await b.status_as(user)).json()["message"]


async def test_a_key_rotated_through_replica_a_takes_only_its_new_secret_on_replica_b(
    replicas: list[Replica],
) -> None:
    a, b = replicas
    admin, old_secret, user_id = await _admin_and_user(a)
    assert (await b.status_as(old_secret)).status_code == 404
    rotated = await a.client.post(f"/v1/admin/keys/{user_id}/rotate",
                                  headers={"Authorization": f"Bearer {admin}"})
    assert rotated.status_code == 200, rotated.text
    new_secret = rotated.json()["api_key"]

    async def only_the_new_one_on_b() -> bool:
        old, new = await b.status_as(old_secret), await b.status_as(new_secret)
        return old.status_code == 401 and new.status_code == 404

    await _seconds_until(only_the_new_one_on_b, _bound(b))


async def test_a_tier_changed_in_the_table_and_limits_set_on_a_reach_replica_b(
    replicas: list[Replica],
) -> None:
    a, b = replicas
    admin, user, user_id = await _admin_and_user(a, tier="pro")
    assert (await b.status_as(user)).headers["X-RateLimit-Limit"] == "80"  # 60 + 20
    await a.services.store.connector.execute(
        "UPDATE api_keys SET tier = 'enterprise' WHERE id = :id", {"id": user_id})

    async def limit_on_b_is(expected: str) -> bool:
        return (await b.status_as(user)).headers["X-RateLimit-Limit"] == expected

    await _seconds_until(lambda: limit_on_b_is("400"), _bound(b))  # 300 + 100
    patched = await a.client.patch(
        f"/v1/admin/keys/{user_id}", json={"custom_limits": {"requests_per_minute": 1000}},
        headers={"Authorization": f"Bearer {admin}"})
    assert patched.status_code == 200, patched.text
    await _seconds_until(lambda: limit_on_b_is("1100"), _bound(b))
