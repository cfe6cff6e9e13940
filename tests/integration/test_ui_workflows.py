"""UI-format files, as ComfyUI's editor saved them (built in the real editor: see
tests/ui_format/named.js), submitted as they are to a real service over real ComfyUI."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import httpx

from tests.helpers import wait_until_finished

UI_FILES = Path(__file__).resolve().parents[1] / "fixtures" / "ui_workflows"


def ui_file(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((UI_FILES / f"{name}.json").read_text())
    return loaded


async def run_to_completion(api: httpx.AsyncClient, workflow: dict[str, Any],
                            overrides: dict[str, Any]) -> tuple[dict[str, Any], list[Any]]:
    accepted = await api.post("/v1/workflows/execute",
                              json={"workflow": workflow, "input_overrides": overrides})
    assert accepted.status_code == 202, accepted.text
    body = accepted.json()
    final = await wait_until_finished(api, body["execution_id"])
    assert final["status"] == "completed", final
    results = (await api.get(f"/v1/workflows/{body['execution_id']}/results")).json()
    return body, results["results"]["outputs"]


async def test_a_ui_format_tiny_sd15_file_runs_as_saved(api: httpx.AsyncClient) -> None:
    accepted, outputs = await run_to_completion(api, ui_file("tiny-sd15"),
                                                {"seed": random.randrange(1 << 30)})
    assert "converted from ComfyUI's UI format" in accepted["warnings"][0]
    [output] = outputs
    assert output["file_info"]["dimensions"] == "64x64"


async def test_muted_bypassed_rerouted_primitive_and_subgraph_convert_and_run(
        api: httpx.AsyncClient) -> None:
    workflow = ui_file("constructs")
    converted = await api.post("/v1/workflows/convert", json={"workflow": workflow})
    assert converted.status_code == 200, converted.text
    graph = converted.json()["workflow"]
    assert graph["8"]["inputs"]["seed"] == graph["9"]["inputs"]["seed"] == 4242
    assert graph["2"]["inputs"]["clip"] == ["1", 1]  # through three reroutes
    assert graph["17:13"]["inputs"]["image"] == ["11", 0]  # the bypassed invert, skipped
    assert "15" not in graph  # the muted preview
    assert graph["14"]["inputs"]["images"] == ["17:13", 0]  # out of the subgraph
    accepted, outputs = await run_to_completion(
        api, workflow, {"8.seed": random.randrange(1 << 30)})
    assert any("is bypassed" in warning for warning in accepted["warnings"])
    [output] = outputs
    assert output["file_info"]["dimensions"] == "64x64"


async def test_convert_runs_nothing_and_answers_api_workflows_too(
        api: httpx.AsyncClient) -> None:
    workflow = {"1": {"class_type": "EmptyImage", "inputs": {
        "width": 8, "height": 8, "batch_size": 1, "color": 0}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0],
                                                    "filename_prefix": "x"}}}
    converted = await api.post("/v1/workflows/convert", json={"workflow": workflow})
    assert converted.json()["format"] == "api"
    assert converted.json()["workflow"]["1"]["inputs"]["width"] == 8
    assert "execution_id" not in converted.json()
