"""A tenant against the event stream: another tenant's execution, a forged Last-Event-ID,
more open streams than allowed, and a long stream that must count as one request."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator

import httpx

from comfy_serverless.testing import LocalService
from tests.helpers import submit, wait_for
from tests.sse import Frame, frames, read_events
from workloads.workflows import tiny_sd15

STREAM_LIMIT = 10  # stream_max_per_key's default


async def test_another_tenants_stream_is_not_found(tenant_a: httpx.AsyncClient,
                                                   tenant_b: httpx.AsyncClient) -> None:
    execution_id = await submit(tenant_a, tiny_sd15(random.randrange(2**31), steps=2))
    refused = await tenant_b.get(f"/v1/workflows/{execution_id}/events")
    assert refused.status_code == 404
    assert refused.json()["error_code"] == "EXECUTION_NOT_FOUND"
    assert refused.json()["status"] == "error"
    events = await read_events(tenant_a, execution_id)
    assert events[-1].event == "end"


async def test_a_forged_last_event_id_is_refused_in_the_error_shape(
    tenant_a: httpx.AsyncClient,
) -> None:
    execution_id = await submit(tenant_a, tiny_sd15(random.randrange(2**31), steps=2))
    for forged in ("-1", "1e9", "abc", "99999999999999999999", "1; DROP"):
        response = await tenant_a.get(f"/v1/workflows/{execution_id}/events",
                                      headers={"Last-Event-ID": forged})
        assert response.status_code == 400, forged
        assert response.json()["error_code"] == "INVALID_REQUEST"
    assert (await read_events(tenant_a, execution_id))[-1].event == "end"


@contextlib.asynccontextmanager
async def _open_stream(client: httpx.AsyncClient, execution_id: str
                       ) -> AsyncIterator[httpx.Response]:
    async with client.stream("GET", f"/v1/workflows/{execution_id}/events") as response:
        yield response


async def test_open_streams_are_capped_per_key_not_per_service(
    tenant_a: httpx.AsyncClient, tenant_b: httpx.AsyncClient,
) -> None:
    execution_id = await submit(tenant_a, tiny_sd15(random.randrange(2**31), steps=5000))
    async with contextlib.AsyncExitStack() as streams:
        opened = [await streams.enter_async_context(_open_stream(tenant_a, execution_id))
                  for _ in range(STREAM_LIMIT)]
        assert {response.status_code for response in opened} == {200}
        refused = await tenant_a.get(f"/v1/workflows/{execution_id}/events")
        assert refused.status_code == 429
        assert refused.json()["error_code"] == "STREAM_LIMIT_EXCEEDED"
        assert refused.json()["details"]["max_streams"] == STREAM_LIMIT
        assert int(refused.headers["Retry-After"]) >= 1
        other = await submit(tenant_b, tiny_sd15(random.randrange(2**31), steps=2))
        async with _open_stream(tenant_b, other) as response:
            assert response.status_code == 200  # another key is not affected
        assert (await tenant_b.delete(f"/v1/workflows/{other}/cancel")).status_code == 200
        await opened[0].aclose()  # the tenant hangs up one stream: its slot comes back

        async def slot_free() -> bool:
            async with _open_stream(tenant_a, execution_id) as response:
                return response.status_code == 200

        await wait_for(slot_free, timeout=10, what="the closed stream's slot")
        cancel = await tenant_a.delete(f"/v1/workflows/{execution_id}/cancel")
        assert cancel.status_code == 200
        # The streams still held end with the cancel (new ones could find the key's slots
        # not yet given back by the streams hung up just before).
        ends = await asyncio.wait_for(asyncio.gather(
            *(_to_the_end(response) for response in opened[1:4])), 30)
    assert all(events[-1].event == "end" for events in ends)
    assert all(events[-1].data["status"] == "cancelled" for events in ends)


async def _to_the_end(response: httpx.Response) -> list[Frame]:
    """The events of an open stream, read until the server closes it after `end`."""
    return [frame async for frame in frames(response) if frame.id is not None]


async def test_a_long_stream_spends_one_request_of_the_rate_limit(
    service: LocalService,
) -> None:
    key = service.new_key("--tier", "basic")  # 10 requests per minute
    async with httpx.AsyncClient(base_url=service.base_url, timeout=60,
                                 headers={"Authorization": f"Bearer {key}"}) as client:
        accepted = await client.post("/v1/workflows/execute", json={
            "workflow": tiny_sd15(random.randrange(2**31), steps=12)})
        assert accepted.status_code == 202
        events = await read_events(client, accepted.json()["execution_id"])
        after = await client.get("/v1/models/list")
    assert len(events) > 10  # more events than the key could spend in requests
    spent = (int(accepted.headers["X-RateLimit-Remaining"])
             - int(after.headers["X-RateLimit-Remaining"]))
    assert spent <= 2, spent  # the stream and this read (less any budget refilled meanwhile)
