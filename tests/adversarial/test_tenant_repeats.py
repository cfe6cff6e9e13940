"""A tenant who submits the same workflow again, and another tenant who submits it too.

ComfyUI answers an identical prompt from its cache, output nodes included, and the cached
history names files that the first run's collector has already moved out. Every run must
complete with its own stored outputs, of every kind, while the upstream nodes are still
served from ComfyUI's cache (it is a real speed-up).
"""

from __future__ import annotations

import random
from typing import Any

import httpx
import pytest

from tests.helpers import submit, wait_until_finished

pytestmark = pytest.mark.comfyui

# Output nodes of every kind: still image, preview (temp folder), animation, audio, text.
_OUTPUT_NODES = {"3": "SaveImage", "4": "PreviewImage", "5": "SaveAnimatedWEBP",
                 "7": "SaveAudio", "8": "PreviewAny"}
_UPSTREAM_NODES = {"1": "EmptyImage", "2": "ImageInvert", "6": "EmptyAudio"}


def _every_output_kind(color: int) -> dict[str, Any]:
    return {
        "1": {"class_type": "EmptyImage",
              "inputs": {"width": 16, "height": 16, "batch_size": 2, "color": color}},
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "SaveImage",
              "inputs": {"images": ["2", 0], "filename_prefix": "repeat"}},
        "4": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}},
        "5": {"class_type": "SaveAnimatedWEBP", "inputs": {
            "images": ["2", 0], "filename_prefix": "repeat", "fps": 6.0, "lossless": True,
            "quality": 80, "method": "default"}},
        "6": {"class_type": "EmptyAudio",
              "inputs": {"duration": 0.25, "sample_rate": 8000, "channels": 1}},
        "7": {"class_type": "SaveAudio",
              "inputs": {"audio": ["6", 0], "filename_prefix": "repeat"}},
        "8": {"class_type": "PreviewAny", "inputs": {"source": ["2", 0]}},
    }


async def _finished(client: httpx.AsyncClient, execution_id: str) -> dict[str, Any]:
    final = await wait_until_finished(client, execution_id)
    assert final["status"] == "completed", (final.get("error"), final.get("execution_log"))
    return final


async def _outputs(client: httpx.AsyncClient, execution_id: str) -> list[dict[str, Any]]:
    response = await client.get(f"/v1/workflows/{execution_id}/results")
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    return [*results["outputs"], *results.get("intermediate_outputs", [])]


async def _download(url: str) -> bytes:
    async with httpx.AsyncClient() as browser:
        response = await browser.get(url)
    assert response.status_code == 200, response.text
    return response.content


def _served_from_cache(status: dict[str, Any]) -> set[str]:
    return {entry["node_id"] for entry in status["execution_log"]
            if entry["event"] == "node_completed" and entry.get("details", {}).get("cached")}


async def test_identical_submissions_from_two_keys_each_complete_with_their_own_outputs(
    tenant_a: httpx.AsyncClient, tenant_b: httpx.AsyncClient
) -> None:
    workflow = _every_output_kind(random.randrange(1 << 24))
    clients = [tenant_a, tenant_a, tenant_b, tenant_b]
    runs = [(client, await submit(client, workflow)) for client in clients]

    finals = [await _finished(client, execution_id) for client, execution_id in runs]
    stored_keys: set[str] = set()
    for client, execution_id in runs:
        outputs = await _outputs(client, execution_id)
        assert {o["node_id"] for o in outputs} == set(_OUTPUT_NODES), outputs
        for output in outputs:
            assert await _download(output["storage"]["url"]), output
            assert output["storage"]["key"] not in stored_keys, "an output stored twice"
            stored_keys.add(output["storage"]["key"])
    # The first run computed everything; each repeat ran its output nodes again, and only
    # them: the upstream nodes came from ComfyUI's cache.
    assert _served_from_cache(finals[0]) == set()
    for repeat in finals[1:]:
        assert _served_from_cache(repeat) == set(_UPSTREAM_NODES), repeat["execution_log"]


async def test_an_exact_run_is_never_served_from_an_optimized_runs_cache(
    tenant_a: httpx.AsyncClient, tenant_b: httpx.AsyncClient
) -> None:
    """`enable_optimization: false` asks for exact arithmetic: none of its nodes may come
    from the cache of a run with TF32 on (here another tenant's), and a default run after
    it is not served from its results either; exact runs share their own cache."""
    workflow = _every_output_kind(random.randrange(1 << 24))
    exact = {"execution_config": {"enable_optimization": False}}
    optimized = await submit(tenant_a, workflow)
    await _finished(tenant_a, optimized)
    first_exact = await submit(tenant_b, workflow, **exact)
    assert _served_from_cache(await _finished(tenant_b, first_exact)) == set()
    again_exact = await submit(tenant_b, workflow, **exact)
    assert _served_from_cache(await _finished(tenant_b, again_exact)) == set(_UPSTREAM_NODES)
    default_again = await submit(tenant_a, workflow)
    assert _served_from_cache(await _finished(tenant_a, default_again)) == set()
