"""execution_config's engine fields on a real service over a CPU ComfyUI: a GPU memory
share is refused at submit (the live worker has no GPU), `enable_optimization` reaches
ComfyUI with the prompt, and the status metrics carry the GPU fields, null on a CPU."""

from __future__ import annotations

import random
from typing import Any

import httpx
import pytest

from comfy_serverless.testing import LocalService
from tests.helpers import status_of, submit, wait_for, wait_until_finished
from workloads.workflows import inverted_image, tiny_sd15

pytestmark = pytest.mark.comfyui


async def test_a_gpu_memory_share_is_refused_when_no_live_worker_has_a_gpu(
    api: httpx.AsyncClient
) -> None:
    response = await api.post("/v1/workflows/execute", json={
        "workflow": inverted_image(random.randrange(1 << 24)),
        "execution_config": {"gpu_memory_fraction": 0.8}})
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["status"] == "error"
    assert body["error_code"] == "FEATURE_UNAVAILABLE"
    assert body["details"]["field"] == "execution_config.gpu_memory_fraction"
    assert body["details"]["gpu_workers"] == 0


async def test_optimization_reaches_comfyui_and_metrics_are_null_on_a_cpu(
    api: httpx.AsyncClient
) -> None:
    execution_id = await submit(api, inverted_image(random.randrange(1 << 24)),
                                execution_config={"enable_optimization": False})
    final = await wait_until_finished(api, execution_id)
    assert final["status"] == "completed", final
    assert final["metrics"]["gpu_utilization"] is None
    assert final["metrics"]["memory_efficiency"] is None


async def test_optimization_reaches_comfyui_with_the_prompt(
    api: httpx.AsyncClient, service: LocalService
) -> None:
    # ComfyUI's history entry is dropped once the attempt ends, so the prompt is read from
    # ComfyUI's queue while it runs: a sampler job long enough to be seen there.
    execution_id = await submit(api, tiny_sd15(random.randrange(1, 2**31), steps=10_000),
                                execution_config={"enable_optimization": False})
    async def running_entry() -> list[Any] | None:
        allocation = (await status_of(api, execution_id)).get("resource_allocation") or {}
        prompt_id = allocation.get("engine_prompt_id")
        running = (await comfyui.get("/queue")).json()["queue_running"]
        return next((entry for entry in running if entry[1] == prompt_id), None)

    async with httpx.AsyncClient(base_url=service.comfyui_url) as comfyui:
        entry = await wait_for(running_entry, timeout=60, interval=0.02,
                               what="the prompt to run in ComfyUI")
    assert (await api.delete(f"/v1/workflows/{execution_id}/cancel")).status_code == 200
    assert (await wait_until_finished(api, execution_id))["status"] == "cancelled"
    extra_data = entry[3]
    assert extra_data["cs_tuning"] == {"gpu_memory_fraction": None, "optimize": False}
