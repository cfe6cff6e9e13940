"""The Submitter, as services.py wires it over a SQLite store: a domain request in, and an
execution accepted, an idempotent replay or a refusal out, with no HTTP in between."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from comfy_serverless.auth.keys import issue_key
from comfy_serverless.executions.requests import (
    Idempotency,
    NotifyRequest,
    OutputRequest,
    RunRequest,
    SubmitRequest,
)
from comfy_serverless.executions.submitter import (
    SubmitAccepted,
    SubmitRefused,
    SubmitReplayed,
    Submitter,
)
from comfy_serverless.services import Services, open_services
from comfy_serverless.settings import Settings
from comfy_serverless.store.options import NotifyOptions
from comfy_serverless.store.records import ApiKeyRecord
from comfy_serverless.webhooks.ssrf import InvalidWebhookUrl
from workloads.workflows import inverted_image


@dataclasses.dataclass
class Harness:
    services: Services
    submitter: Submitter
    key: ApiKeyRecord
    wakes: list[None]


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    settings = Settings(data_dir=tmp_path, embedded_worker=False, webhook_dispatcher=False)
    async with open_services(settings) as services:
        key = issue_key("secret", "basic").record
        await services.store.access.create_api_key(key)
        wakes: list[None] = []
        submitter = dataclasses.replace(services.submitter, wake=lambda: wakes.append(None))
        yield Harness(services, submitter, key, wakes)


def _request(*, request_id: str | None = None, fingerprint: object = "first",
             webhook_header: str | None = None, **run: Any) -> SubmitRequest:
    run_request = RunRequest(**{"priority": 5, "timeout": None, "gpu_memory_fraction": None,
                                "batch_size": None, "enable_optimization": True,
                                "retry_attempts": None, **run})
    return SubmitRequest(
        workflow=inverted_image(1), input_overrides={},
        output=OutputRequest("png", 95, None, {}), run=run_request,
        notify=NotifyRequest(None, "a secret", include_progress=True,
                             include_intermediate=False),
        webhook_header=webhook_header, client_id="client-1",
        idempotency=Idempotency(request_id, None, fingerprint))


async def test_an_accepted_request_is_queued_with_its_options_and_wakes_the_worker(
        harness: Harness) -> None:
    outcome = await harness.submitter.submit(_request(priority=7, timeout=60), harness.key)
    assert isinstance(outcome, SubmitAccepted)
    assert harness.wakes == [None]
    stored = await harness.services.store.executions.execution(outcome.execution.id)
    assert stored is not None
    assert (stored.status, stored.priority, stored.client_id) == ("queued", 7, "client-1")
    assert stored.options.run.timeout == 60
    assert stored.options.notify == NotifyOptions(None, include_progress=True,
                                                  include_intermediate=False)
    assert outcome.estimate.queue_position == 1


async def test_a_repeated_request_id_replays_its_execution_and_refuses_another_request(
        harness: Harness) -> None:
    first = await harness.submitter.submit(_request(request_id="r-1"), harness.key)
    again = await harness.submitter.submit(_request(request_id="r-1"), harness.key)
    assert isinstance(first, SubmitAccepted)
    assert isinstance(again, SubmitReplayed)
    assert again.execution.id == first.execution.id
    assert harness.wakes == [None]  # a replay queues nothing
    other = await harness.submitter.submit(
        _request(request_id="r-1", fingerprint="another body"), harness.key)
    assert isinstance(other, SubmitRefused)
    assert other.error.error_code == "IDEMPOTENCY_KEY_REUSED"
    assert other.error.details["execution_id"] == first.execution.id


async def test_past_the_tier_limit_the_request_is_refused_with_a_retry_after(
        harness: Harness) -> None:
    for _ in range(3):  # the basic tier runs 3 executions at once
        assert isinstance(await harness.submitter.submit(_request(), harness.key),
                          SubmitAccepted)
    refused = await harness.submitter.submit(_request(), harness.key)
    assert isinstance(refused, SubmitRefused)
    assert refused.error.status_code == 429
    assert refused.error.error_code == "RATE_LIMIT_EXCEEDED"
    assert refused.error.headers["Retry-After"] == "30"  # nothing estimates an end yet
    assert len(await harness.services.store.access.unfinished(harness.key.id)) == 3


async def test_an_internal_webhook_url_is_refused_naming_the_header_it_came_from(
        harness: Harness) -> None:
    with pytest.raises(InvalidWebhookUrl) as refused:
        await harness.submitter.submit(
            _request(webhook_header="https://127.0.0.1/hook"), harness.key)
    assert refused.value.details["field"] == "X-Webhook-URL"
    assert harness.wakes == []
