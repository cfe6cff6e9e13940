"""A tenant who names files to read another tenant's outputs, staged inputs or the server's
folders, on the real engine."""

from __future__ import annotations

import base64
import json
import random
import tempfile
from pathlib import Path
from typing import Any

import httpx

from comfy_serverless.testing import LocalService
from tests.helpers import submit, wait_for, wait_until_finished
from tests.integration import test_lifecycle
from tests.published_inputs import PUBLISHED_BROKEN_IMAGE, PUBLISHED_IMAGE, png_bytes
from workloads.workflows import inverted_image

# The loopback webhook receiver of the lifecycle tests, as fixtures of this module too.
webhook_receiver = test_lifecycle.webhook_receiver
webhook_url = test_lifecycle.webhook_url


def _load_and_save(image: str) -> dict[str, Any]:
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": image}},
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"filename_prefix": "b", "images": ["2", 0]}},
    }


async def _refused_at_submit(client: httpx.AsyncClient, workflow: dict[str, Any]) -> str:
    response = await client.post("/v1/workflows/execute", json={"workflow": workflow})
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error_code"] == "WORKFLOW_VALIDATION_FAILED"
    assert "execution_id" not in body
    [problem] = body["details"]["validation_errors"]
    assert problem["node_id"] == "1"
    return str(problem["error"])


async def test_another_tenants_output_cannot_be_read_by_any_spelling(
    tenant_a: httpx.AsyncClient, tenant_b: httpx.AsyncClient
) -> None:
    prefix = f"tenant-a-{random.randrange(1 << 30)}"
    workflow = inverted_image(random.randrange(1 << 24))
    workflow["3"]["inputs"]["filename_prefix"] = prefix
    execution_id = await submit(tenant_a, workflow)
    assert (await wait_until_finished(tenant_a, execution_id))["status"] == "completed"
    written = f"{prefix}_00001_.png"  # the name ComfyUI gave tenant A's output
    for spelling in (f"{written} [output]", f"{written}[output]", f"{written} [temp]",
                     f"{written}[temp]", f"../output/{written}", f"..%2Foutput%2F{written}",
                     f"..\\output\\{written}", f"/{written}", "x[output]"):
        error = await _refused_at_submit(tenant_b, _load_and_save(spelling))
        assert spelling in error
    for name in (written, f"{written} [output]"):  # the loader that reads the output folder
        workflow = _load_and_save(name)
        workflow["1"]["class_type"] = "LoadImageOutput"
        assert name in await _refused_at_submit(tenant_b, workflow)
    through_override = await tenant_b.post("/v1/workflows/execute", json={
        "workflow": _load_and_save(PUBLISHED_IMAGE),
        "input_overrides": {"1.image": f"{written} [output]"}})
    assert through_override.status_code == 400, through_override.text


async def test_another_executions_staged_input_cannot_be_named(
    tenant_a: httpx.AsyncClient, tenant_b: httpx.AsyncClient
) -> None:
    data_uri = "data:image/png;base64," + base64.b64encode(png_bytes()).decode()
    execution_id = await submit(tenant_a, _load_and_save(data_uri))
    assert (await wait_until_finished(tenant_a, execution_id))["status"] == "completed"
    staged = f"comfy-serverless/{execution_id}_0.png"
    error = await _refused_at_submit(tenant_b, _load_and_save(staged))
    assert "a staged input: only the service may name those" in error


async def test_an_unpublished_name_is_refused_and_a_published_one_runs(
    tenant_b: httpx.AsyncClient
) -> None:
    error = await _refused_at_submit(tenant_b, _load_and_save("never-uploaded.png"))
    assert error == "'image' names 'never-uploaded.png', which is not a published input file"
    execution_id = await submit(tenant_b, _load_and_save(PUBLISHED_IMAGE))
    assert (await wait_until_finished(tenant_b, execution_id))["status"] == "completed"


def _host_paths(service: LocalService) -> list[str]:
    engine_dir = service.env["COMFY_SERVERLESS_ENGINE_DIR"]
    return [str(service.data_dir), engine_dir, str(Path.home()), tempfile.gettempdir() + "/",
            "/comfyui/input", "/comfyui/output"]


async def test_a_run_time_failure_shows_no_host_path(
    tenant_b: httpx.AsyncClient, service: LocalService,
    webhook_receiver: list[dict[str, Any]], webhook_url: str,
) -> None:
    execution_id = await submit(tenant_b, _load_and_save(PUBLISHED_BROKEN_IMAGE),
                                notification_config={"webhook_url": webhook_url})
    final = await wait_until_finished(tenant_b, execution_id)
    assert final["status"] == "failed"
    assert "cannot identify image file" in final["error"]["message"]
    results = await tenant_b.get(f"/v1/workflows/{execution_id}/results")

    async def failed_event() -> list[dict[str, Any]]:
        return [e for e in webhook_receiver if e.get("event_type") == "execution.failed"]

    webhook = await wait_for(failed_event, timeout=30, what="the execution.failed webhook")
    assert webhook[0]["data"]["error"]["message"] == final["error"]["message"]
    seen = json.dumps([final, results.json(), webhook])
    for path in _host_paths(service):
        assert path not in seen, f"{path} leaks in {seen}"


def _load_3d(image: dict[str, Any]) -> dict[str, Any]:
    return {
        "1": {"class_type": "Load3D", "inputs": {"model_file": "scene.glb", "image": image,
                                                 "width": 64, "height": 64}},
        "2": {"class_type": "Preview3D", "inputs": {"model_file": ["1", 2],
                                                    "camera_info": ["1", 4]}},
    }


async def test_an_object_input_cannot_name_a_file(tenant_b: httpx.AsyncClient) -> None:
    """Load3D opens the annotated paths of its `image` object, and Preview3D reports the
    object's `camera_info` as its result, which the worker would collect and delete: an
    object input that names a file is refused at submit, whoever's file it is."""
    camera = {"position": {"x": 1, "y": 2, "z": 3}, "zoom": 1}
    objects: list[dict[str, Any]] = [
        {"image": "ComfyUI_00001_.png [output]", "mask": "", "normal": "", "recording": "",
         "camera_info": camera},
        {"image": "", "mask": "", "normal": "", "recording": "",
         "camera_info": {**camera, "filename": "shared.png", "type": "input"}},
        {"image": "", "mask": "", "normal": "", "recording": "",
         "camera_info": [{"filename": "exe_x_0.png", "subfolder": "comfy-serverless"}]},
        {"image": "", "mask": "", "normal": "comfy-serverless/exe_x_0.png", "recording": ""},
    ]
    for image in objects:
        response = await tenant_b.post("/v1/workflows/execute",
                                       json={"workflow": _load_3d(image)})
        assert response.status_code == 400, response.text
        errors = [p["error"] for p in response.json()["details"]["validation_errors"]
                  if p["node_id"] == "1"]
        assert any("object that names a file" in error for error in errors), errors


def _refusals(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 400, response.text
    assert "execution_id" not in response.json()
    return list(response.json()["details"]["validation_errors"])


async def test_a_name_through_a_link_is_refused(tenant_a: httpx.AsyncClient) -> None:
    image = inverted_image(random.randrange(1 << 24))
    into_dataset = {**image, "3": {"class_type": "SaveImageDataSetToFolder", "inputs": {
        "images": ["2", 0], "folder_name": ["9", 0], "filename_prefix": "x"}},
        "9": {"class_type": "PrimitiveString", "inputs": {"value": "../input"}}}
    into_prefix = {**image, "3": {"class_type": "SaveImage", "inputs": {
        "images": ["2", 0], "filename_prefix": ["9", 0]}},
        "9": {"class_type": "PrimitiveString", "inputs": {"value": "/tmp/x"}}}
    into_reader = {"1": {"class_type": "LoadTrainingDataset", "inputs": {"folder_name": ["9", 0]}},
                   "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}},
                   "9": {"class_type": "PrimitiveString", "inputs": {"value": "training"}}}
    for workflow in (into_dataset, into_prefix, into_reader):
        response = await tenant_a.post("/v1/workflows/execute", json={"workflow": workflow})
        assert any("takes a link" in p["error"] for p in _refusals(response)), response.text


async def test_no_subfolder_of_the_input_folder_is_read(tenant_a: httpx.AsyncClient) -> None:
    for folder in ("comfy-serverless", "3d"):
        workflow = {"1": {"class_type": "LoadImageDataSetFromFolder",
                          "inputs": {"folder": folder}},
                    "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}}}
        response = await tenant_a.post("/v1/workflows/execute", json={"workflow": workflow})
        assert any("input folder" in p["error"] for p in _refusals(response)), response.text


async def test_no_tenant_can_make_a_model_for_the_others(tenant_a: httpx.AsyncClient) -> None:
    saver = {"1": {"class_type": "CheckpointLoaderSimple",
                   "inputs": {"ckpt_name": "tiny-sd15.safetensors"}},
             "2": {"class_type": "CheckpointSave", "inputs": {
                 "model": ["1", 0], "clip": ["1", 1], "vae": ["1", 2],
                 "filename_prefix": "checkpoints/ComfyUI"}}}
    errors = [p["error"] for p in _refusals(await tenant_a.post(
        "/v1/workflows/execute", json={"workflow": saver}))]
    assert "Node class 'CheckpointSave' saves a model, which this service does not allow" in (
        errors)
    image = inverted_image(random.randrange(1 << 24))
    image["3"]["inputs"]["filename_prefix"] = "loras/x"
    [problem] = _refusals(await tenant_a.post("/v1/workflows/execute", json={"workflow": image}))
    assert "model folder" in problem["error"]


async def test_a_wrapped_name_is_checked_as_comfyui_unwraps_it(tenant_a: httpx.AsyncClient
                                                              ) -> None:
    loader = _load_and_save(PUBLISHED_IMAGE)
    loader["1"]["inputs"]["image"] = {"__value__": "inv_00001_.png [output]"}
    assert await _refused_at_submit(tenant_a, loader)
    image = inverted_image(random.randrange(1 << 24))
    image["3"]["inputs"]["filename_prefix"] = {"__value__": "../../etc/x"}
    [problem] = _refusals(await tenant_a.post("/v1/workflows/execute", json={"workflow": image}))
    assert "'filename_prefix'" in problem["error"]
