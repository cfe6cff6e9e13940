"""execution_config's engine fields on a real service over a CPU ComfyUI: a GPU memory
share is refused at submit (the live worker has no GPU), `enable_optimization` reaches
ComfyUI with the prompt, and the status metrics carry the GPU fields, null on a CPU."""

from __future__ import annotations

import random

import httpx
import pytest

from comfy_serverless.testing import LocalService
from tests.helpers import submit, wait_until_finished
from workloads.workflows import inverted_image

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
    api: httpx.AsyncClient, service: LocalService
) -> None:
    execution_id = await submit(api, inverted_image(random.randrange(1 << 24)),
                                execution_config={"enable_optimization": False})
    final = await wait_until_finished(api, execution_id)
    assert final["status"] == "completed", final
    assert final["metrics"]["gpu_utilization"] is None
    assert final["metrics"]["memory_efficiency"] is None
    prompt_id = final["resource_allocation"]["engine_prompt_id"]
    async with httpx.AsyncClient(base_url=service.comfyui_url) as comfyui:
        history = (await comfyui.get(f"/history/{prompt_id}")).json()[prompt_id]
    extra_data = history["prompt"][3]
    assert extra_data["cs_tuning"] == {"gpu_memory_fraction": None, "optimize": False}
