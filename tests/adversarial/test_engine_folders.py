"""A tenant who looks for other executions' traces in the engine's folders and files.

Every execution's outputs, previews and uploaded input images leave ComfyUI's folders once
its attempt ends, whatever ends it; and the worker's own additions to a prompt (pinned
preload loaders, per-run output marks) never reach a user's file metadata.
"""

from __future__ import annotations

import base64
import io
import json
import random
from typing import Any

import httpx
import pytest
from PIL import Image

from comfy_serverless.testing import LocalService
from tests.helpers import submit, wait_for, wait_until_finished
from workloads.workflows import TINY_CHECKPOINT, inverted_image

pytestmark = pytest.mark.comfyui

_EXECUTION_FOLDERS = ("output", "temp", "input/comfy-serverless")


def _left_in_engine(service: LocalService) -> list[str]:
    engine = service.data_dir / "comfyui"
    assert all((engine / folder).is_dir() for folder in _EXECUTION_FOLDERS)
    return sorted(str(path.relative_to(engine)) for folder in _EXECUTION_FOLDERS
                  for path in (engine / folder).rglob("*") if path.is_file())


async def _engine_folders_emptied(service: LocalService) -> None:
    """The attempt's files leave as it ends, just after its outcome is recorded."""
    async def emptied() -> bool:
        return _left_in_engine(service) == []

    try:
        await wait_for(emptied, timeout=10, what="the engine's folders to be emptied")
    except AssertionError:
        assert _left_in_engine(service) == []
        raise


def _png_data_uri(color: tuple[int, int, int]) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (12, 12), color).save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _outputs_and_previews_of_a_staged_image(color: tuple[int, int, int]) -> dict[str, Any]:
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": _png_data_uri(color)}},
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0],
                                                   "filename_prefix": "folders"}},
        "4": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}},
        "5": {"class_type": "SaveAnimatedWEBP", "inputs": {
            "images": ["2", 0], "filename_prefix": "folders", "fps": 6.0, "lossless": True,
            "quality": 80, "method": "default"}},
    }


def _saves_then_fails(color: int) -> dict[str, Any]:
    """SaveImage runs first (ComfyUI runs a ready output node first), then ImageToMask
    fails: an RGB image has no alpha channel."""
    return {
        "1": {"class_type": "EmptyImage",
              "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": color}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0],
                                                   "filename_prefix": "before_failure"}},
        "3": {"class_type": "ImageToMask", "inputs": {"image": ["1", 0], "channel": "alpha"}},
        "4": {"class_type": "MaskPreview", "inputs": {"mask": ["3", 0]}},
    }


async def test_a_completed_execution_leaves_nothing_in_the_engines_folders(
    tenant_a: httpx.AsyncClient, service: LocalService
) -> None:
    color = (random.randrange(256), 7, 9)
    execution_id = await submit(tenant_a, _outputs_and_previews_of_a_staged_image(color))
    final = await wait_until_finished(tenant_a, execution_id)
    assert final["status"] == "completed", final
    results = (await tenant_a.get(f"/v1/workflows/{execution_id}/results")).json()["results"]
    assert {o["node_id"] for o in results["outputs"]} == {"3", "5"}
    assert {o["node_id"] for o in results["intermediate_outputs"]} == {"4"}
    await _engine_folders_emptied(service)


async def test_a_failed_execution_leaves_nothing_in_the_engines_folders(
    tenant_a: httpx.AsyncClient, service: LocalService
) -> None:
    execution_id = await submit(tenant_a, _saves_then_fails(random.randrange(1 << 24)))
    final = await wait_until_finished(tenant_a, execution_id)
    assert final["status"] == "failed", final
    logged = {entry["node_id"] for entry in final["execution_log"]
              if entry["event"] == "node_completed"}
    assert "2" in logged, "SaveImage ran and wrote its file before the failure"
    await _engine_folders_emptied(service)


def _text_chunks(png: bytes) -> dict[str, str]:
    with Image.open(io.BytesIO(png)) as image:
        return {str(key): value for key, value in image.info.items() if isinstance(value, str)}


async def test_another_tenants_preload_never_reaches_my_metadata(
    tenant_a: httpx.AsyncClient, tenant_b: httpx.AsyncClient, service: LocalService
) -> None:
    response = await tenant_a.post("/v1/models/preload", json={
        "models": [{"model_id": f"checkpoint/{TINY_CHECKPOINT.removesuffix('.safetensors')}"}],
        "cache_duration": 120})
    assert response.status_code == 202, response.text

    async def pinned() -> bool:
        workers = (await tenant_b.get("/v1/models/list", params={"category": "checkpoint"}))
        return any(model["availability"]["warm_cache"]
                   for model in workers.json().get("models", []))

    await wait_for(pinned, timeout=90, interval=0.2, what="the preload to be pinned")
    # An exact run also marks every node for ComfyUI's cache (cs_tuning): left out too.
    for extra in ({}, {"execution_config": {"enable_optimization": False}}):
        workflow = inverted_image(random.randrange(1 << 24))
        execution_id = await submit(tenant_b, workflow, **extra)
        final = await wait_until_finished(tenant_b, execution_id)
        assert final["status"] == "completed", final
        [output] = (await tenant_b.get(f"/v1/workflows/{execution_id}/results")).json()[
            "results"]["outputs"]
        async with httpx.AsyncClient() as browser:
            png = (await browser.get(output["storage"]["url"])).content
        prompt = json.loads(_text_chunks(png)["prompt"])
        assert prompt == workflow, "the metadata is tenant B's own graph, nothing added"



async def test_files_written_but_never_reported_leave_the_engines_folders(
    tenant_a: httpx.AsyncClient, service: LocalService
) -> None:
    """SaveImageDataSetToFolder writes into output/ and reports nothing, like CheckpointSave,
    SaveLoRA and the other savers of models: gigabytes that no history names."""
    folder = f"dataset-{random.randrange(1 << 30)}"
    workflow = {
        "1": {"class_type": "EmptyImage", "inputs": {
            "width": 16, "height": 16, "batch_size": 1, "color": random.randrange(1 << 24)}},
        "2": {"class_type": "SaveImageDataSetToFolder", "inputs": {
            "images": ["1", 0], "folder_name": folder, "filename_prefix": "img"}},
    }
    execution_id = await submit(tenant_a, workflow)
    final = await wait_until_finished(tenant_a, execution_id)
    assert final["status"] == "completed", (final.get("error"), final["execution_log"])
    logged = {entry["node_id"] for entry in final["execution_log"]
              if entry["event"] == "node_completed"}
    assert "2" in logged, "the saver ran"
    await _engine_folders_emptied(service)
