"""Every walk over a graph or a nested value is iterative: no size or depth recurses."""

from __future__ import annotations

from typing import Any

import pytest

from comfy_serverless.errors import ApiError
from comfy_serverless.validation.overrides import apply_overrides, overlay_overrides
from comfy_serverless.validation.rules import ValidationRules
from comfy_serverless.validation.validator import WorkflowValidator
from comfy_serverless.validation.workflow import parse_workflow, workflow_signature
from tests.unit.test_validator import CATALOG, refused, validate


def invert_chain(length: int) -> dict[str, Any]:
    """EmptyImage → `length` ImageInverts in a row → SaveImage."""
    graph: dict[str, Any] = {"0": {"class_type": "EmptyImage", "inputs": {
        "width": 8, "height": 8, "batch_size": 1, "color": 0}}}
    for index in range(1, length + 1):
        graph[str(index)] = {"class_type": "ImageInvert",
                             "inputs": {"image": [str(index - 1), 0]}}
    graph["save"] = {"class_type": "SaveImage",
                     "inputs": {"filename_prefix": "chain", "images": [str(length), 0]}}
    return graph


def nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("length", [1_000, 100_000])
def test_a_long_chain_is_walked_without_recursion_when_the_limits_allow_it(length: int) -> None:
    rules = ValidationRules(max_nodes=length + 2, max_connections=length + 1)
    parsed = parse_workflow(invert_chain(length), rules)
    graph = apply_overrides(parsed.graph, {"filename_prefix": "long"})
    validated = WorkflowValidator(rules, CATALOG).validate(graph, parsed.problems)
    assert len(validated.graph) == length + 2
    assert workflow_signature(validated.graph)


def test_a_long_cycle_is_found_without_recursion() -> None:
    graph = invert_chain(100_000)
    graph["1"]["inputs"]["image"] = ["100000", 0]
    rules = ValidationRules(max_nodes=200_000, max_connections=200_000)
    problems = parse_workflow(graph, rules).problems
    assert [p.error for p in problems] == ["The graph has a cycle through this node"]


def test_size_limits_are_answered_before_any_walk() -> None:
    graph = invert_chain(100_000)
    graph["1"]["inputs"]["image"] = ["100000", 0]
    with pytest.raises(ApiError) as caught:
        parse_workflow(graph, ValidationRules())
    errors = [p["error"] for p in caught.value.body()["details"]["validation_errors"]]
    assert errors == ["The workflow has 100002 nodes, more than max_nodes 100",
                      "The workflow has 100001 connections, more than max_connections 500"]


@pytest.mark.parametrize("depth", [33, 990, 100_000])
def test_deeply_nested_values_are_refused_without_recursion(depth: int) -> None:
    workflow = invert_chain(1)
    workflow["1"]["inputs"]["note"] = nested(depth)
    [problem] = refused(workflow)["validation_errors"]
    assert problem["error"] == "Input 'note' nests values more than max_input_depth 32 levels deep"
    with pytest.raises(ApiError):
        validate(workflow, catalog=None)


def test_values_nested_within_the_limit_pass() -> None:
    workflow = invert_chain(1)
    workflow["1"]["inputs"]["note"] = nested(31)
    assert validate(workflow).graph["1"]["inputs"]["note"] == nested(31)


def test_a_node_with_too_many_inputs_is_answered_before_anything_else() -> None:
    workflow = invert_chain(1)
    workflow["1"]["inputs"].update({f"extra_{index}": index for index in range(100_000)})
    with pytest.raises(ApiError) as caught:
        parse_workflow(workflow, ValidationRules())
    [problem] = caught.value.body()["details"]["validation_errors"]
    assert problem["node_id"] == "1"
    assert problem["error"] == "The node gives 100001 inputs, more than max_node_inputs 256"


def test_too_many_override_keys_are_refused_before_any_is_looked_for() -> None:
    overrides = {f"key_{index}": index for index in range(10_000)}
    with pytest.raises(ApiError) as caught:
        overlay_overrides(invert_chain(1), overrides, CATALOG, max_keys=100)
    [problem] = caught.value.body()["details"]["validation_errors"]
    assert problem["error"] == ("input_overrides has 10000 keys, more than max_input_overrides "
                                "100")
