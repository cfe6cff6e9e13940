"""A tenant who sends graphs, names and values meant to crash the validator, reach the
server's folders, or slip past submit and fail on a worker."""

from __future__ import annotations

import json
import random
from typing import Any

import httpx
import pytest

from tests.helpers import submit, wait_until_finished
from tests.spec_examples import SPEC_OVERRIDES, SPEC_WORKFLOW
from tests.unit.test_graph_walks import invert_chain
from workloads.workflows import inverted_image


def _assert_refused(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 400, response.text
    body: dict[str, Any] = response.json()
    assert body["status"] == "error"
    assert body["error_code"] in ("WORKFLOW_VALIDATION_FAILED", "INVALID_REQUEST")
    return body


@pytest.mark.parametrize("length", [1_000, 100_000])
async def test_a_long_chain_is_a_clean_400(tenant_a: httpx.AsyncClient, length: int) -> None:
    graph = invert_chain(length)
    graph["1"]["inputs"]["image"] = [str(length), 0]  # and a cycle through all of it
    response = await tenant_a.post("/v1/workflows/execute", json={"workflow": graph})
    errors = [e["error"] for e in _assert_refused(response)["details"]["validation_errors"]]
    assert f"The workflow has {length + 2} nodes, more than max_nodes 100" in errors


@pytest.mark.parametrize("depth", [500, 900, 100_000])
async def test_deeply_nested_input_values_are_a_clean_400(tenant_a: httpx.AsyncClient,
                                                          depth: int) -> None:
    workflow = inverted_image(1)
    workflow["2"]["inputs"]["note"] = "NESTED"
    body = json.dumps({"workflow": workflow}).replace(
        '"NESTED"', "[" * depth + '"leaf"' + "]" * depth)  # json.dumps itself would recurse
    response = await tenant_a.post("/v1/workflows/execute", content=body,
                                   headers={"Content-Type": "application/json"})
    _assert_refused(response)


async def test_a_link_with_an_integer_node_id_runs(tenant_a: httpx.AsyncClient) -> None:
    workflow = inverted_image(random.randrange(1 << 24))
    workflow["2"]["inputs"]["image"] = [1, 0]
    execution_id = await submit(tenant_a, workflow)
    assert (await wait_until_finished(tenant_a, execution_id))["status"] == "completed"


async def test_the_specs_own_request_gets_the_workflows_findings(
    tenant_a: httpx.AsyncClient
) -> None:
    response = await tenant_a.post("/v1/workflows/execute", json={
        "workflow": SPEC_WORKFLOW, "input_overrides": SPEC_OVERRIDES})
    details = _assert_refused(response)["details"]
    errors = {e["error"]: e["suggestion"] for e in details["validation_errors"]}
    assert "Missing required input connection 'model'" in errors
    assert "CheckpointLoaderSimple" in details["missing_nodes"]
    assert "Did you mean 'prompt'" not in json.dumps(errors)
    assert "input_overrides key 'prompt' matches no input of the workflow" in errors


@pytest.mark.parametrize("prefix", ["../../../tmp/x", "/tmp/x", "x" * 3_000, "renders/../../x",
                                    "..\\..\\x", "%2e%2e/x", "C:/x", "x\x00y"])
async def test_a_filename_prefix_outside_the_output_folder_is_refused_at_submit(
    tenant_a: httpx.AsyncClient, prefix: str
) -> None:
    workflow = inverted_image(random.randrange(1 << 24))
    workflow["3"]["inputs"]["filename_prefix"] = prefix
    response = await tenant_a.post("/v1/workflows/execute", json={"workflow": workflow})
    [problem] = _assert_refused(response)["details"]["validation_errors"]
    assert problem["node_id"] == "3"
    assert "'filename_prefix'" in problem["error"]


async def test_crowded_nodes_and_overrides_are_refused_before_they_cost_time(
    tenant_a: httpx.AsyncClient
) -> None:
    workflow = inverted_image(1)
    workflow["2"]["inputs"].update({f"extra_{index}": index for index in range(100_000)})
    response = await tenant_a.post("/v1/workflows/execute", json={"workflow": workflow})
    [problem] = _assert_refused(response)["details"]["validation_errors"]
    assert problem["error"].endswith("inputs, more than max_node_inputs 256")
    overrides = {f"key_{index}": index for index in range(10_000)}
    response = await tenant_a.post("/v1/workflows/execute", json={
        "workflow": inverted_image(1), "input_overrides": overrides})
    [problem] = _assert_refused(response)["details"]["validation_errors"]
    assert problem["error"].endswith("keys, more than max_input_overrides 100")


async def test_overrides_get_the_structural_checks(tenant_a: httpx.AsyncClient) -> None:
    workflow = inverted_image(random.randrange(1 << 24))
    execution_id = await submit(tenant_a, workflow, input_overrides={"2.image": [1, 0]})
    assert (await wait_until_finished(tenant_a, execution_id))["status"] == "completed"
    for overrides in ({"3.images": ["99", 0]}, {"2.image": ["2", 0]}):
        response = await tenant_a.post("/v1/workflows/execute", json={
            "workflow": inverted_image(1), "input_overrides": overrides})
        errors = [e["error"] for e in _assert_refused(response)["details"]["validation_errors"]]
        assert any("does not exist" in error or "cycle" in error for error in errors), errors


async def test_one_crowded_input_gets_one_short_answer(tenant_a: httpx.AsyncClient) -> None:
    workflow = inverted_image(1)
    workflow["2"]["inputs"]["note"] = [10_000_000] * 200_000
    response = await tenant_a.post("/v1/workflows/execute", json={"workflow": workflow})
    [problem] = _assert_refused(response)["details"]["validation_errors"]
    assert "(and 199999 more in this input)" in problem["error"]
    assert len(response.content) < 10_000


async def test_unmatched_overrides_are_answered_quickly(tenant_a: httpx.AsyncClient) -> None:
    workflow = inverted_image(1)
    for node in range(90):  # 18,000 inputs: the candidates of a "did you mean"
        workflow[f"n{node}"] = {"class_type": "ImageInvert", "inputs": {
            "image": ["1", 0], **{f"in_{index}": index for index in range(200)}}}
    overrides = {f"in_{index}z": index for index in range(100)}
    response = await tenant_a.post("/v1/workflows/execute", json={
        "workflow": workflow, "input_overrides": overrides}, timeout=60)
    assert len(_assert_refused(response)["details"]["validation_errors"]) == 51
    assert response.elapsed.total_seconds() < 5
