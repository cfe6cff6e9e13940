"""The Python SDK (clients/python) against the running service and its real ComfyUI:
`run` with a progress callback gets the output file; errors are typed with the spec's
fields; a retried submit never runs twice; both webhook schemes verify what the service
signs."""

from __future__ import annotations

import asyncio
import base64
import random
import time
from pathlib import Path

import pytest
from comfy_serverless_client import (
    AsyncClient,
    Client,
    Conflict,
    NotFound,
    Progress,
    verify_webhook,
)

from comfy_serverless.testing import LocalService
from comfy_serverless.webhooks.signing import signature_headers
from workloads.workflows import inverted_image, tiny_sd15

ROOT = Path(__file__).resolve().parents[2]


def _run_tiny_sd15(service: LocalService, key: str, folder: Path) -> tuple[list[Progress],
                                                                          list[Path]]:
    seen: list[Progress] = []
    with Client(service.base_url, key) as client:
        results = client.run(tiny_sd15(random.randrange(2**31), steps=8),
                             overrides={"prompt": "a red lighthouse"}, on_progress=seen.append)
        return seen, client.download(results, folder)


async def test_run_with_a_progress_callback_gets_its_output_file(
    service: LocalService, api_key: str, tmp_path: Path,
) -> None:
    seen, files = await asyncio.to_thread(_run_tiny_sd15, service, api_key, tmp_path)
    [image] = files
    assert image.parent == tmp_path
    assert image.read_bytes().startswith(b"\x89PNG")
    shares = [progress.progress for progress in seen]
    assert shares == sorted(shares)
    assert 0 < shares[-1] <= 1
    steps = [progress.current_step for progress in seen if progress.current_node == "KSampler"
             and progress.current_step is not None]
    assert steps
    assert all(progress.total_nodes == 7 for progress in seen)


async def test_the_async_client_runs_and_raises_typed_errors(
    service: LocalService, api_key: str, tmp_path: Path,
) -> None:
    async with AsyncClient(service.base_url, api_key) as client:
        seen: list[Progress] = []
        results = await client.run({"workflow": inverted_image(random.randrange(2**24))},
                                   on_progress=seen.append)
        assert results.status == "completed"
        [image] = await client.download(results, tmp_path)
        assert image.read_bytes().startswith(b"\x89PNG")
        with pytest.raises(NotFound) as missing:
            await client.status("exec_does_not_exist")
        assert missing.value.error_code == "EXECUTION_NOT_FOUND"
        assert missing.value.status_code == 404
        with pytest.raises(Conflict) as finished:
            await client.cancel(results.execution_id)
        assert finished.value.error_code == "EXECUTION_ALREADY_FINISHED"
        assert finished.value.details["status"] == "completed"


async def test_a_retried_submit_with_its_idempotency_key_runs_once(
    service: LocalService, api_key: str,
) -> None:
    workflow = inverted_image(random.randrange(2**24))
    async with AsyncClient(service.base_url, api_key) as client:
        first = await client.submit(workflow, idempotency_key="retry-me-" + str(id(workflow)))
        again = await client.submit(workflow, idempotency_key="retry-me-" + str(id(workflow)))
        other = await client.submit(workflow)
    assert again.execution_id == first.execution_id
    assert other.execution_id != first.execution_id


def test_the_sync_mode_of_the_sdk(service: LocalService, api_key: str) -> None:
    with Client(service.base_url, api_key) as client:
        answer = client.submit_and_wait(inverted_image(random.randrange(2**24)), wait=30)
    assert answer.status == "completed"


STANDARD_SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()


@pytest.mark.parametrize("secret", ["plain-secret!", STANDARD_SECRET])
def test_the_webhook_helper_verifies_what_the_service_signs(secret: str) -> None:
    body = b'{"event_type":"execution.completed","execution_id":"exec_1"}'
    headers = signature_headers(body, secret, "evt_1", int(time.time()))
    assert verify_webhook(body, headers, secret)
    assert not verify_webhook(body.replace(b"exec_1", b"exec_2"), headers, secret)
    assert not verify_webhook(body, headers, secret + "x")
