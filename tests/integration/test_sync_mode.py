"""`Prefer: wait=N` on POST /v1/workflows/execute, on the real engine: a short job answers
200 with its results in one request; a long one the usual 202 after N seconds; one that is
cancelled meanwhile, its error. `Preference-Applied` says which wait was honoured."""

from __future__ import annotations

import asyncio
import random
import time

import httpx

from comfy_serverless.api.sync_mode import preferred_wait
from tests.helpers import wait_for
from workloads.workflows import inverted_image, tiny_sd15


async def _execute(api: httpx.AsyncClient, workflow: dict[str, object], prefer: str | None
                   ) -> httpx.Response:
    headers = {"Prefer": prefer} if prefer else {}
    return await api.post("/v1/workflows/execute", json={"workflow": workflow},
                          headers=headers, timeout=90)


async def test_a_short_job_answers_200_with_its_results_in_one_request(
    api: httpx.AsyncClient,
) -> None:
    response = await _execute(api, inverted_image(random.randrange(2**24)), "wait=30")
    assert response.status_code == 200, response.text
    assert response.headers["Preference-Applied"] == "wait=30"
    body = response.json()
    assert body["status"] == "completed"
    [output] = body["results"]["outputs"]
    image = await api.get(output["storage"]["url"])
    assert image.content.startswith(b"\x89PNG")


async def test_a_long_job_answers_202_once_the_wait_is_over(api: httpx.AsyncClient) -> None:
    started = time.monotonic()
    response = await _execute(api, tiny_sd15(random.randrange(2**31), steps=2000), "wait=2")
    took = time.monotonic() - started
    assert response.status_code == 202, response.text
    assert response.headers["Preference-Applied"] == "wait=2"
    assert response.json()["status"] == "accepted"
    assert 2 <= took < 30, took
    cancelled = await api.delete(f"/v1/workflows/{response.json()['execution_id']}/cancel")
    assert cancelled.status_code == 200


async def test_a_job_cancelled_during_the_wait_answers_its_error(api: httpx.AsyncClient) -> None:
    body = {"workflow": tiny_sd15(random.randrange(2**31), steps=2000)}
    idempotency = {"Idempotency-Key": f"sync-{random.randrange(2**62)}"}
    waiting = asyncio.create_task(api.post(
        "/v1/workflows/execute", json=body, timeout=90,
        headers={**idempotency, "Prefer": "respond-async, wait=50"}))

    async def submitted_id() -> str | None:
        # The same request again, without the preference: the idempotent replay names it.
        replay = await api.post("/v1/workflows/execute", json=body, headers=idempotency)
        return str(replay.json()["execution_id"]) if replay.status_code == 202 else None

    execution_id = await wait_for(submitted_id, timeout=30, interval=0.2,
                                  what="the submit to be recorded")
    assert not waiting.done()
    assert (await api.delete(f"/v1/workflows/{execution_id}/cancel")).status_code == 200
    response = await asyncio.wait_for(waiting, 30)
    assert response.status_code == 409
    assert response.json()["error_code"] == "EXECUTION_NOT_SUCCESSFUL"
    assert response.json()["details"]["status"] == "cancelled"
    assert response.headers["Preference-Applied"] == "wait=50"


async def test_without_a_wait_preference_the_submit_answers_202_at_once(
    api: httpx.AsyncClient,
) -> None:
    response = await _execute(api, inverted_image(random.randrange(2**24)), "return=minimal")
    assert response.status_code == 202
    assert "Preference-Applied" not in response.headers


def test_the_wait_preference_is_parsed_as_rfc_7240_writes_it() -> None:
    assert preferred_wait("wait=10") == 10
    assert preferred_wait('respond-async, Wait="5"') == 5
    assert preferred_wait("wait=600") == 60
    assert preferred_wait("wait=10; foo=bar") == 10
    for ignored in (None, "", "wait", "wait=-1", "wait=1.5", "wait=abc", "return=minimal"):
        assert preferred_wait(ignored) is None, ignored


async def test_a_retried_sync_submit_waits_for_the_same_execution(
    api: httpx.AsyncClient,
) -> None:
    body = {"workflow": inverted_image(random.randrange(2**24))}
    headers = {"Idempotency-Key": f"sync-{random.randrange(2**62)}", "Prefer": "wait=30"}
    first = await api.post("/v1/workflows/execute", json=body, headers=headers, timeout=60)
    again = await api.post("/v1/workflows/execute", json=body, headers=headers, timeout=60)
    assert (first.status_code, again.status_code) == (200, 200), again.text
    assert again.json()["execution_id"] == first.json()["execution_id"]
    assert again.headers["Preference-Applied"] == "wait=30"
