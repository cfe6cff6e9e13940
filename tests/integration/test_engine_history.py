"""On a real ComfyUI: once an attempt ends, its prompt is gone from ComfyUI's history, which
would otherwise keep up to 10,000 prompts (graph, outputs and messages) in its memory."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from comfy_serverless.testing import LocalService
from tests.helpers import submit, wait_for, wait_until_finished
from workloads.workflows import inverted_image, tiny_sd15

pytestmark = pytest.mark.comfyui


async def _history_ids(service: LocalService) -> set[str]:
    async with httpx.AsyncClient(base_url=service.comfyui_url, timeout=30) as comfyui:
        response = await comfyui.get("/history")
        assert response.status_code == 200
        entries: dict[str, Any] = response.json()
        return set(entries)


def _dropped_since(service: LocalService, before: set[str]) -> Callable[[], Awaitable[bool]]:
    """Whether ComfyUI's history holds no prompt beyond those it held `before`."""
    async def dropped() -> bool:
        return await _history_ids(service) <= before
    return dropped


async def test_a_completed_prompt_leaves_comfyuis_history(
    api: httpx.AsyncClient, service: LocalService,
) -> None:
    before = await _history_ids(service)
    execution_id = await submit(api, inverted_image(random.randrange(0, 0xFFFFFF)))
    assert (await wait_until_finished(api, execution_id))["status"] == "completed"
    # The answer comes first; the attempt's cleanup just after.
    await wait_for(_dropped_since(service, before), timeout=10, interval=0.1,
                   what="the prompt's history entry to go")


async def test_a_failed_prompt_leaves_comfyuis_history(
    api: httpx.AsyncClient, service: LocalService,
) -> None:
    before = await _history_ids(service)
    # Far more steps than a second allows: the timeout interrupts it in ComfyUI.
    workflow = tiny_sd15(random.randrange(1, 2**31), steps=10_000)
    execution_id = await submit(api, workflow, execution_config={"timeout": 1})
    final = await wait_until_finished(api, execution_id)
    assert final["status"] == "failed", final
    # The worker waits for ComfyUI to write the interrupted prompt's entry, then drops it,
    # before it takes another job; an unrelated job's end proves that moment has passed.
    follower = await submit(api, inverted_image(random.randrange(0, 0xFFFFFF)))
    assert (await wait_until_finished(api, follower))["status"] == "completed"
    await wait_for(_dropped_since(service, before), timeout=10, interval=0.1,
                   what="both prompts' history entries to go")
