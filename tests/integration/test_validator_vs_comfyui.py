"""Our validator against real ComfyUI 0.3.75, on 500 generated graphs.

For every graph: what we accept must be accepted by ComfyUI's /prompt and run without
breaking its prompt worker; what we refuse is sent to ComfyUI too (unless it is a structure
known to stop its worker) to count false rejections. Prints the tally.
"""

from __future__ import annotations

import random
import uuid
from collections import Counter
from typing import Any

import httpx
import pytest

from comfy_serverless.errors import ApiError, EnginePromptRejected
from comfy_serverless.testing import LocalService
from comfy_serverless.validation.catalog import NodeCatalog
from comfy_serverless.validation.rules import ValidationRules
from comfy_serverless.validation.validator import WorkflowValidator
from comfy_serverless.validation.workflow import parse_workflow
from comfy_serverless.worker.failures import rejection_failure
from tests.graphgen import POLICY_MUTATIONS, GeneratedGraph, GraphGenerator
from tests.helpers import wait_for

pytestmark = pytest.mark.comfyui

GRAPHS = 500


async def _run_on_comfyui(http: httpx.AsyncClient, graph: dict[str, Any]) -> str:
    """'rejected', 'succeeded' or 'failed' (accepted, then an error at run time)."""
    prompt_id = str(uuid.uuid4())
    response = await http.post("/prompt", json={"prompt": graph, "prompt_id": prompt_id,
                                                "client_id": "validator-comparison"})
    if response.status_code == 400:
        return "rejected"
    assert response.status_code == 200, response.text
    async def finished_entry() -> dict[str, Any] | None:
        entry = (await http.get(f"/history/{prompt_id}")).json().get(prompt_id)
        done = entry and entry.get("status", {}).get("completed") is not None
        return entry if done else None

    entry = await wait_for(finished_entry, timeout=30, interval=0.01,
                           what=f"ComfyUI to finish (its prompt worker stops on {graph})")
    return "succeeded" if entry["status"]["status_str"] == "success" else "failed"


def _ours(validator: WorkflowValidator, generated: GeneratedGraph
          ) -> tuple[bool, dict[str, Any]]:
    parsed = parse_workflow({"nodes": generated.graph})
    try:
        return True, validator.validate(parsed.graph, parsed.problems).graph
    except ApiError:
        return False, generated.graph


async def test_no_graph_we_accept_is_refused_or_breaks_comfyui(
    service: LocalService, capsys: pytest.CaptureFixture[str],
) -> None:
    tally: Counter[str] = Counter()
    async with httpx.AsyncClient(base_url=service.comfyui_url, timeout=30) as http:
        catalog = NodeCatalog.from_object_info((await http.get("/object_info")).json())
        validator = WorkflowValidator(ValidationRules(), catalog)
        generator = GraphGenerator(catalog)
        for seed in range(GRAPHS):
            generated = generator.generate(random.Random(seed))
            accepted, graph = _ours(validator, generated)
            if not accepted and not generated.safe_for_comfyui:
                tally["refused: unsafe structure, not sent"] += 1
                continue
            theirs = await _run_on_comfyui(http, graph)
            if accepted:
                assert theirs != "rejected", f"we accepted what ComfyUI rejects: {graph}"
                tally[f"accepted: ComfyUI {theirs}"] += 1
            elif theirs == "succeeded":
                policy = generated.mutation in POLICY_MUTATIONS
                tally["refused by documented policy, ComfyUI ran it" if policy
                      else "FALSE REJECTION"] += 1
            else:
                tally[f"refused: ComfyUI {theirs}"] += 1
    with capsys.disabled():
        print(f"\nvalidator vs ComfyUI 0.3.75 over {GRAPHS} graphs:")
        for outcome, count in sorted(tally.items()):
            print(f"  {count:4d}  {outcome}")
    assert tally["FALSE REJECTION"] == 0
    assert tally["accepted: ComfyUI failed"] == 0
    assert tally["accepted: ComfyUI succeeded"] > 100


async def _comfyui_answer(http: httpx.AsyncClient, graph: dict[str, Any]) -> httpx.Response:
    return await http.post("/prompt", json={"prompt": graph, "prompt_id": str(uuid.uuid4()),
                                            "client_id": "validator-comparison"})


async def test_a_link_with_an_integer_node_id_is_sent_as_text_and_runs(
    service: LocalService,
) -> None:
    graph = {
        "1": {"class_type": "EmptyImage",
              "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": random.randrange(99)}},
        "2": {"class_type": "ImageInvert", "inputs": {"image": [1, 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"filename_prefix": "int-link",
                                                     "images": ["2", 0]}},
    }
    async with httpx.AsyncClient(base_url=service.comfyui_url, timeout=30) as http:
        raw = await _comfyui_answer(http, graph)
        assert raw.status_code == 400  # ComfyUI looks the integer 1 up, and fails
        failure = rejection_failure(EnginePromptRejected("refused", raw.json()["node_errors"]))
        [problem] = failure.extra["validation_errors"]
        assert problem["node_id"] == "2"
        assert problem["suggestion"] == ("Fix the inputs of ImageInvert (node '2'), which "
                                         "feeds input 'images' of a node downstream")
        catalog = NodeCatalog.from_object_info((await http.get("/object_info")).json())
        ours = _ours(WorkflowValidator(ValidationRules(), catalog),
                     GeneratedGraph(graph, None))
        assert ours == (True, {**graph, "2": {"class_type": "ImageInvert",
                                              "inputs": {"image": ["1", 0]}}})
        assert await _run_on_comfyui(http, ours[1]) == "succeeded"


async def test_a_file_neither_staged_nor_published_is_refused_by_both(
    service: LocalService,
) -> None:
    graph = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "never-uploaded.png"}},
        "2": {"class_type": "SaveImage", "inputs": {"filename_prefix": "x", "images": ["1", 0]}},
    }
    async with httpx.AsyncClient(base_url=service.comfyui_url, timeout=30) as http:
        catalog = NodeCatalog.from_object_info((await http.get("/object_info")).json())
        ours = _ours(WorkflowValidator(ValidationRules(), catalog),
                     GeneratedGraph(graph, None))
        assert ours == (False, graph)
        raw = await _comfyui_answer(http, graph)
        assert raw.status_code == 400
        [error] = raw.json()["node_errors"]["1"]["errors"]
        assert error["type"] == "custom_validation_failed"
