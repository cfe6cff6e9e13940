"""End to end on a real ComfyUI: submit, follow progress, fetch results, cancel, recover."""

from __future__ import annotations

import base64
import json
import os
import random
import signal
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from aiohttp import web

from comfy_serverless.storage.signing import UrlSigner
from comfy_serverless.testing import LocalService, free_port
from tests.helpers import (
    status_of,
    submit,
    wait_for,
    wait_until_finished,
)
from tests.published_inputs import PUBLISHED_VANISHING_IMAGE
from workloads.workflows import inverted_image, tiny_sd15

pytestmark = pytest.mark.comfyui


@pytest.fixture
async def webhook_receiver() -> AsyncIterator[list[dict[str, Any]]]:
    received: list[dict[str, Any]] = []

    async def handle(request: web.Request) -> web.Response:
        received.append(json.loads(await request.read()))
        return web.Response()

    app = web.Application()
    app.router.add_post("/hook", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    received.append({"_port": port})
    yield received
    await runner.cleanup()


@pytest.fixture
def webhook_url(webhook_receiver: list[dict[str, Any]]) -> str:
    port = webhook_receiver.pop(0)["_port"]
    return f"http://127.0.0.1:{port}/hook"


def _seed() -> int:
    return random.randrange(1, 2**31)


async def _comfyui_queue(service: LocalService) -> dict[str, Any]:
    async with httpx.AsyncClient() as raw:
        body: dict[str, Any] = (await raw.get(service.comfyui_url + "/queue")).json()
        return body


async def test_tiny_sd15_reports_progress_then_downloads_its_png(
    api: httpx.AsyncClient, service: LocalService, webhook_receiver: list[dict[str, Any]],
    webhook_url: str,
) -> None:
    response = await api.post("/v1/workflows/execute", json={
        "workflow": {"nodes": tiny_sd15(_seed(), steps=20), "metadata": {"title": "tiny"}},
        "notification_config": {"webhook_url": webhook_url, "webhook_secret": "s3cret",
                                "include_progress": True, "include_intermediate": True},
    })
    assert response.status_code == 202
    accepted = response.json()
    assert accepted["status"] == "accepted"
    assert accepted["queue_position"] >= 1
    assert accepted["webhook_url"] == webhook_url
    execution_id = accepted["execution_id"]
    assert accepted["status_url"] == f"/v1/workflows/{execution_id}/status"
    assert accepted["cancel_url"] == f"/v1/workflows/{execution_id}/cancel"
    assert {"estimated_duration", "estimated_start_time", "estimated_completion_time"} <= set(
        accepted)

    seen: list[dict[str, Any]] = []

    async def sampling_observed() -> bool:
        body = await status_of(api, execution_id)
        seen.append(body)
        assert body["status"] != "failed", body
        steps = [s["current_step"] for s in seen if s["current_node"] == "KSampler"
                 and s["current_step"]]
        return len(set(steps)) >= 3 or body["status"] == "completed"

    await wait_for(sampling_observed, timeout=120, interval=0.05, what="KSampler steps")
    sampling = [s for s in seen if s["current_node"] == "KSampler" and s["current_step"]]
    assert len(sampling) >= 3, "status never showed KSampler stepping"
    assert all(s["status"] == "processing" and s["total_steps"] == 20 for s in sampling)
    steps = [s["current_step"] for s in sampling]
    progress = [s["progress"] for s in seen]
    assert steps == sorted(steps)
    assert steps[-1] > steps[0]
    assert progress == sorted(progress)
    assert progress[-1] > progress[0]

    final = await wait_until_finished(api, execution_id)
    assert final["status"] == "completed", final
    assert final["progress"] == 1.0
    assert final["metrics"] == {"total_nodes": 7, "completed_nodes": 7,
                                "gpu_utilization": None, "memory_efficiency": None}
    assert final["resource_allocation"]["gpu_memory_total"].endswith("GB")
    events = [entry["event"] for entry in final["execution_log"]]
    assert "execution_started" in events
    assert events.count("node_completed") == 7
    loaded = [e for e in final["execution_log"] if e["event"] == "model_loaded"]
    assert loaded
    assert loaded[0]["node_id"] == "4"

    results = (await api.get(f"/v1/workflows/{execution_id}/results",
                             params={"include_metadata": "true"})).json()
    [output] = results["results"]["outputs"]
    assert output["output_type"] == "IMAGE"
    assert output["file_info"]["dimensions"] == "64x64"
    assert output["file_info"]["format"] == "PNG"
    metrics = results["execution_metrics"]
    assert metrics["total_time"] >= metrics["processing_time"] >= metrics["gpu_time"] > 0
    assert results["results"]["metadata"]["model_used"] == "tiny-sd15.safetensors"

    url = output["storage"]["url"]
    async with httpx.AsyncClient() as browser:
        download = await browser.get(url)
        assert download.status_code == 200
        assert download.content.startswith(b"\x89PNG")
        assert len(download.content) == output["file_info"]["size_bytes"]

        tampered = await browser.get(url.replace("signature=", "signature=0"))
        assert tampered.status_code == 403
        assert tampered.json()["error_code"] == "SIGNED_URL_INVALID"

        await _check_webhooks(api, execution_id, webhook_receiver, download.content)

        parts = urlsplit(url)
        key = parts.path.removeprefix("/files/")
        secret = (service.data_dir / "signing-secret").read_text().strip()
        past = int(time.time()) - 5
        expired_path = UrlSigner(secret).signed_path(key, past)
        expired = await browser.get(service.base_url + expired_path)
        assert expired.status_code == 403
        assert expired.json()["details"]["reason"] == "expired"
        assert parse_qs(parts.query)["expires"][0] != str(past)


async def _check_webhooks(api: httpx.AsyncClient, execution_id: str,
                          received: list[dict[str, Any]], png: bytes) -> None:
    async def terminal_event() -> bool:
        return any(e["event_type"] == "execution.completed" for e in received)

    await wait_for(terminal_event, timeout=30, what="the execution.completed webhook")
    mine = [e for e in received if e["execution_id"] == execution_id]
    kinds = [e["event_type"] for e in mine]
    assert kinds[0] == "execution.started"
    assert kinds[-1] == "execution.completed"
    progress = [e["data"] for e in mine if e["event_type"] == "execution.progress"]
    assert progress, "include_progress sends progress events"
    assert [p["progress"] for p in progress] == sorted(p["progress"] for p in progress)
    previews = [p["preview_url"] for p in progress if "preview_url" in p]
    assert previews, "include_intermediate adds sampler previews"
    async with httpx.AsyncClient() as browser:
        preview = await browser.get(previews[-1])
        assert preview.status_code == 200
        assert preview.content[:3] in (b"\xff\xd8\xff", b"\x89PN")
    results = (await api.get(f"/v1/workflows/{execution_id}/results")).json()
    kept = results["results"]["intermediate_outputs"]
    assert kept
    assert {o["output_type"] for o in kept} == {"PREVIEW"}
    [url] = mine[-1]["data"]["results"]["output_urls"]
    async with httpx.AsyncClient() as browser:
        assert (await browser.get(url)).content == png
    log = (await api.get(f"/v1/workflows/{execution_id}/webhooks")).json()
    assert {e["status"] for e in log["events"]} == {"delivered"}
    assert all(e["deliveries"][0]["status_code"] == 200 for e in log["events"])


async def test_base64_results_carry_the_file(api: httpx.AsyncClient) -> None:
    execution_id = await submit(api, inverted_image(random.randrange(0, 0xFFFFFF)))
    assert (await wait_until_finished(api, execution_id))["status"] == "completed"
    body = (await api.get(f"/v1/workflows/{execution_id}/results",
                          params={"download_format": "base64"})).json()
    [output] = body["results"]["outputs"]
    data = base64.b64decode(output["data"])
    assert data.startswith(b"\x89PNG")
    assert len(data) == output["file_info"]["size_bytes"]


async def test_results_before_the_end_answer_202(api: httpx.AsyncClient) -> None:
    execution_id = await submit(api, tiny_sd15(_seed(), steps=60))
    early = await api.get(f"/v1/workflows/{execution_id}/results")
    assert early.status_code == 202
    assert early.json()["status"] in ("queued", "processing")
    assert (await api.delete(f"/v1/workflows/{execution_id}/cancel")).status_code == 200


async def test_cancel_during_ksampler_interrupts_comfyui(
    api: httpx.AsyncClient, service: LocalService
) -> None:
    execution_id = await submit(api, tiny_sd15(_seed(), steps=400))

    async def sampling() -> bool:
        body = await status_of(api, execution_id)
        return body["current_node"] == "KSampler" and (body["current_step"] or 0) >= 2

    await wait_for(sampling, timeout=120, what="KSampler to be stepping")
    started = time.monotonic()
    response = await api.delete(f"/v1/workflows/{execution_id}/cancel")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "cancelled"
    assert body["reason"] == "user_requested"
    assert body["partial_results"]["total_nodes"] == 7
    assert body["partial_results"]["completed_nodes"] >= 4

    async def comfyui_idle() -> bool:
        queue = await _comfyui_queue(service)
        return not queue["queue_running"] and not queue["queue_pending"]

    await wait_for(comfyui_idle, timeout=2.0, interval=0.02, what="ComfyUI's queue to empty")
    assert time.monotonic() - started < 2.0
    assert (await status_of(api, execution_id))["status"] == "cancelled"
    again = await api.delete(f"/v1/workflows/{execution_id}/cancel")
    assert again.status_code == 409


async def test_cancel_while_queued_never_reaches_comfyui_and_prefetched_is_withdrawn(
    api: httpx.AsyncClient, service: LocalService,
) -> None:
    blocker = await submit(api, tiny_sd15(_seed(), steps=400), execution_config={"priority": 10})

    async def blocker_running() -> bool:
        status: str = (await status_of(api, blocker))["status"]
        return status == "processing"

    await wait_for(blocker_running, timeout=60, what="the first job to run")
    prefetched = await submit(api, inverted_image(random.randrange(1 << 24)),
                              execution_config={"priority": 5})

    async def handed_to_comfyui() -> bool:
        queue = await _comfyui_queue(service)
        return len(queue["queue_pending"]) == 1

    await wait_for(handed_to_comfyui, timeout=30, what="the second job to be prefetched")
    queued = await submit(api, inverted_image(random.randrange(1 << 24)),
                          execution_config={"priority": 1})
    waiting = await status_of(api, queued)
    assert waiting["status"] == "queued"
    assert waiting["queue_position"] >= 1
    cancelled = await api.delete(f"/v1/workflows/{queued}/cancel")
    assert cancelled.status_code == 200
    assert cancelled.json()["partial_results"]["completed_nodes"] == 0
    final = await status_of(api, queued)
    assert final["status"] == "cancelled"
    assert final["resource_allocation"] is None, "it was never handed to ComfyUI"
    assert "execution_started" not in [e["event"] for e in final["execution_log"]]

    assert (await api.delete(f"/v1/workflows/{prefetched}/cancel")).status_code == 200

    async def prefetched_withdrawn() -> bool:
        return not (await _comfyui_queue(service))["queue_pending"]

    await wait_for(prefetched_withdrawn, timeout=2, interval=0.02,
                   what="the prefetched prompt to leave ComfyUI's queue")
    await api.delete(f"/v1/workflows/{blocker}/cancel")


async def test_comfyui_killed_mid_job_is_restarted_and_the_job_retried(
    api: httpx.AsyncClient, service: LocalService
) -> None:
    execution_id = await submit(api, tiny_sd15(_seed(), steps=200),
                                execution_config={"retry_attempts": 1})

    async def sampling() -> bool:
        node: str | None = (await status_of(api, execution_id))["current_node"]
        return node == "KSampler"

    await wait_for(sampling, timeout=120, what="KSampler to start")
    old_pid = service.comfyui_pid()
    assert old_pid is not None
    os.kill(old_pid, signal.SIGKILL)

    async def restarted() -> bool:
        pid = service.comfyui_pid()
        return pid is not None and pid != old_pid

    await wait_for(restarted, timeout=120, what="a new ComfyUI process")
    final = await wait_until_finished(api, execution_id, timeout=240)
    events = [e["event"] for e in final["execution_log"]]
    assert "execution_retry_scheduled" in events
    assert final["status"] == "completed", final
    assert final["attempt"] == 2

    next_job = await submit(api, inverted_image(random.randrange(0, 0xFFFFFF)))
    assert (await wait_until_finished(api, next_job))["status"] == "completed"


async def test_comfyui_killed_while_idle_is_restarted(
    api: httpx.AsyncClient, service: LocalService
) -> None:
    old_pid = service.comfyui_pid()
    assert old_pid is not None
    os.kill(old_pid, signal.SIGKILL)

    async def answering_again() -> bool:
        pid = service.comfyui_pid()
        if pid is None or pid == old_pid:
            return False
        try:
            async with httpx.AsyncClient() as raw:
                return (await raw.get(service.comfyui_url + "/system_stats")).status_code == 200
        except httpx.HTTPError:
            return False

    await wait_for(answering_again, timeout=120, interval=0.2, what="ComfyUI to be restarted")
    execution_id = await submit(api, inverted_image(random.randrange(0, 0xFFFFFF)))
    assert (await wait_until_finished(api, execution_id))["status"] == "completed"


async def test_the_specs_example_as_is_names_the_missing_model_and_loader(
    api: httpx.AsyncClient,
) -> None:
    spec_example = {"workflow": {"nodes": {
        "1": {"inputs": {"text": "beautiful landscape"}, "class_type": "CLIPTextEncode"},
        "2": {"inputs": {"noise": ["3", 0], "steps": 20}, "class_type": "KSampler"},
    }, "metadata": {"title": "Text to Image Generation", "description": "Standard SDXL workflow",
                    "version": "1.0"}}}
    response = await api.post("/v1/workflows/execute", json=spec_example)
    assert response.status_code == 400
    body = response.json()
    assert body["error_code"] == "WORKFLOW_VALIDATION_FAILED"
    model = [e for e in body["details"]["validation_errors"]
             if e["node_id"] == "2" and e["error"] == "Missing required input connection 'model'"]
    assert model
    assert "CheckpointLoaderSimple" in model[0]["suggestion"]
    assert "CheckpointLoaderSimple" in body["details"]["missing_nodes"]
    assert body["documentation_url"].endswith("/errors/WORKFLOW_VALIDATION_FAILED")


async def test_unreachable_nodes_are_pruned_and_reported(api: httpx.AsyncClient) -> None:
    workflow = inverted_image(random.randrange(1 << 24))
    workflow["7"] = {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}}
    response = await api.post("/v1/workflows/execute", json={"workflow": workflow})
    assert response.status_code == 202
    assert response.json()["warnings"] == [
        "Node '7' (ImageInvert) leads to no output node; it was not sent to ComfyUI"]
    final = await wait_until_finished(api, response.json()["execution_id"])
    assert final["status"] == "completed"
    assert final["metrics"]["total_nodes"] == 3


async def test_a_model_on_no_worker_is_refused_at_submit(api: httpx.AsyncClient) -> None:
    workflow = tiny_sd15(_seed())
    workflow["4"]["inputs"]["ckpt_name"] = "tiny-sd15.safetensor"
    response = await api.post("/v1/workflows/execute", json={"workflow": workflow})
    assert response.status_code == 422
    body = response.json()
    assert body["error_code"] == "WORKFLOW_NOT_RUNNABLE"
    [problem] = body["details"]["validation_errors"]
    assert problem["node_id"] == "4"
    assert "tiny-sd15.safetensors" in problem["suggestion"]


async def test_a_workflow_comfyui_refuses_fails_with_its_node_errors(
    api: httpx.AsyncClient, service: LocalService
) -> None:
    # A published file removed after the catalog listed it: we accept, ComfyUI refuses.
    (service.data_dir / "comfyui" / "input" / PUBLISHED_VANISHING_IMAGE).unlink()
    workflow = {
        "1": {"class_type": "LoadImage", "inputs": {"image": PUBLISHED_VANISHING_IMAGE}},
        "2": {"class_type": "SaveImage", "inputs": {"filename_prefix": "x", "images": ["1", 0]}},
    }
    execution_id = await submit(api, workflow)
    final = await wait_until_finished(api, execution_id)
    assert final["status"] == "failed"
    details = final["error"]["details"]
    assert details["error_type"] == "ENGINE_VALIDATION_FAILED"
    assert [problem["node_id"] for problem in details["validation_errors"]] == ["1"]
    assert final["error"]["retry_info"]["retryable"] is False
    results = await api.get(f"/v1/workflows/{execution_id}/results")
    assert results.status_code == 409
    assert results.json()["status"] == "error"


async def test_keys_are_isolated_and_required(
    api: httpx.AsyncClient, service: LocalService
) -> None:
    execution_id = await submit(api, inverted_image(random.randrange(0, 0xFFFFFF)))
    other = {"Authorization": f"Bearer {service.new_key()}"}
    for method, path in (("GET", "status"), ("GET", "results"), ("DELETE", "cancel")):
        response = await api.request(method, f"/v1/workflows/{execution_id}/{path}",
                                     headers=other)
        assert response.status_code == 404, path
        assert response.json()["error_code"] == "EXECUTION_NOT_FOUND"
    for headers in ({}, {"Authorization": "Bearer comfyui_sk_wrong"}, {"Authorization": "x"}):
        response = await api.get(f"/v1/workflows/{execution_id}/status",
                                 headers={"Authorization": "", **headers})
        assert response.status_code == 401
        assert response.json()["error_code"] == "UNAUTHORIZED"
        assert response.json()["details"]["auth_required"] is True
    await wait_until_finished(api, execution_id)
