"""Two API processes, one PostgreSQL and one Redis: a key's budget is shared, not doubled."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from comfy_serverless.testing import LocalService
from tests.conftest import fresh_postgres_schema

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
async def postgres_database() -> AsyncIterator[str]:
    async with fresh_postgres_schema() as url:
        yield url


@pytest.fixture
def two_apis(postgres_database: str, tmp_path: Path) -> Iterator[list[LocalService]]:
    env = {"DATABASE_URL": postgres_database, "REDIS_URL": REDIS_URL,
           "COMFY_SERVERLESS_EMBEDDED_WORKER": "false",
           "COMFY_SERVERLESS_WEBHOOK_DISPATCHER": "false"}
    # One fleet shares its storage folder and signing secret, or its processes refuse to start.
    with LocalService.start(tmp_path / "a", tmp_path / "no-engine", extra_env=env) as first, \
            LocalService.start(tmp_path / "a", tmp_path / "no-engine", extra_env=env) as second:
        yield [first, second]


async def test_two_replicas_hammered_with_one_key_accept_at_most_limit_plus_burst(
    two_apis: list[LocalService],
) -> None:
    key = two_apis[0].new_key("--tier", "basic")  # 10 per minute, burst allowance 5
    headers = {"Authorization": f"Bearer {key}"}
    clients = [httpx.AsyncClient(base_url=api.base_url, headers=headers, timeout=30)
               for api in two_apis]
    started = time.monotonic()
    try:
        responses = await asyncio.gather(*(
            clients[i % 2].get("/v1/workflows/exec_unknown/status") for i in range(80)))
    finally:
        for client in clients:
            await client.aclose()
    elapsed = time.monotonic() - started
    accepted = [response for response in responses if response.status_code != 429]
    refused = [response for response in responses if response.status_code == 429]
    assert {response.status_code for response in accepted} == {404}
    # A rested key gets 15 at once, then one more every 6 s of the hammering. Each replica
    # answered 40 requests: with a budget each, they would have accepted 30 between them.
    assert 15 <= len(accepted) <= 15 + math.ceil(elapsed / 6), (len(accepted), elapsed)
    by_replica = {api.base_url: 0 for api in two_apis}
    for response in responses:
        by_replica[str(response.request.url).split("/v1/")[0]] += 1
    assert sorted(by_replica.values()) == [40, 40], by_replica
    assert all(response.json()["error_code"] == "RATE_LIMIT_EXCEEDED" for response in refused)
    assert all(int(response.headers["Retry-After"]) >= 1 for response in refused)
