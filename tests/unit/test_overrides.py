"""input_overrides beside the workflow's own findings: the spec's own example request."""

from __future__ import annotations

from typing import Any

import pytest

from comfy_serverless.errors import ApiError
from comfy_serverless.validation.overrides import overlay_overrides
from comfy_serverless.validation.rules import ValidationRules
from comfy_serverless.validation.validator import WorkflowValidator
from comfy_serverless.validation.workflow import parse_workflow
from tests.spec_examples import SPEC_BROKEN_WORKFLOW, SPEC_OVERRIDES, SPEC_WORKFLOW
from tests.unit.test_validator import CATALOG
from workloads.workflows import tiny_sd15


def answer(workflow: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    parsed = parse_workflow(workflow, ValidationRules())
    graph, problems = overlay_overrides(parsed.graph, overrides, CATALOG)
    with pytest.raises(ApiError) as caught:
        WorkflowValidator(ValidationRules(), CATALOG).validate(graph, [*parsed.problems,
                                                                       *problems])
    assert caught.value.status_code == 400
    details: dict[str, Any] = caught.value.body()["details"]
    return details


def _errors(details: dict[str, Any]) -> dict[tuple[str | None, str], str]:
    return {(e["node_id"], e["error"]): e["suggestion"] for e in details["validation_errors"]}


def test_the_spec_request_gets_the_workflows_findings_beside_the_overrides() -> None:
    details = answer(SPEC_WORKFLOW, SPEC_OVERRIDES)
    errors = _errors(details)
    assert ("2", "Missing required input connection 'model'") in errors
    assert "CheckpointLoaderSimple" in details["missing_nodes"]
    prompt = errors[(None, "input_overrides key 'prompt' matches no input of the workflow")]
    assert "'prompt'" not in prompt.replace("'prompt' sets", "")
    assert not [key for key in errors if "'cfg'" in key[1] or "'seed'" in key[1]
                or "'steps'" in key[1]], "cfg, seed and steps set the sampler's inputs"


def test_the_specs_broken_workflow_gets_its_type_mismatch_beside_the_overrides() -> None:
    details = answer(SPEC_BROKEN_WORKFLOW, SPEC_OVERRIDES)
    assert details["invalid_connections"] == [{
        "from_node": "1", "from_socket": "CLIP", "to_node": "2", "to_socket": "positive",
        "error": "Type mismatch: CLIP cannot connect to CONDITIONING"}]
    errors = _errors(details)
    assert ("2", "Missing required input connection 'model'") in errors
    assert "CheckpointLoaderSimple" in details["missing_nodes"]
    assert (None, "input_overrides key 'prompt' matches no input of the workflow") in errors


@pytest.mark.parametrize("key", ["prompt", "negative_prompt", "steps", "width", "sede",
                                 "3.sede", "filename_prefix"])
def test_a_suggestion_never_repeats_the_key_it_corrects(key: str) -> None:
    graph = {"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8,
                                                          "batch_size": 1, "color": 0}}}
    if key == "width":
        graph["1"]["class_type"] = "ImageInvert"  # no latent node takes it
    _, [problem] = overlay_overrides(graph, {key: 1})
    assert f"'{key}'?" not in problem.suggestion
    assert f"'{key}' or" not in problem.suggestion



def test_a_near_miss_is_corrected() -> None:
    _, [problem] = overlay_overrides(tiny_sd15(1), {"sede": 3})
    assert problem.suggestion.startswith("Did you mean 'seed'")


# ------------------------------------------------- overrides and the graph's structure (finding 6)
def _inverted() -> dict[str, Any]:
    return {
        "1": {"class_type": "EmptyImage",
              "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"filename_prefix": "x", "images": ["2", 0]}},
        "4": {"class_type": "ImageInvert", "inputs": {"image": ["3", 0]}},
    }


def test_a_link_given_as_an_override_gets_a_text_node_id() -> None:
    graph, problems = overlay_overrides(_inverted(), {"2.image": [1, 0]}, CATALOG)
    assert problems == []
    assert graph["2"]["inputs"]["image"] == ["1", 0]


@pytest.mark.parametrize("overrides", [{"3.images": ["99", 0]}, {"2.image": ["4", 0],
                                                                   "4.image": ["2", 0]}])
def test_an_override_that_breaks_the_graph_is_refused_at_submit(overrides: dict[str, Any]
                                                               ) -> None:
    for catalog in (CATALOG, None):
        _, problems = overlay_overrides(_inverted(), overrides, catalog)
        assert [p for p in problems if "does not exist" in p.error or "cycle" in p.error]


# --------------------------------------------------------- bounded suggestion work (finding 4)
def test_suggestions_for_many_unmatched_keys_take_bounded_time() -> None:
    import time
    graph = {str(n): {"class_type": "Note", "inputs": {f"input_{n}_{i}": i for i in range(256)}}
             for n in range(100)}
    overrides = {f"{'q' * 300}{n}.zz_{'w' * 3000}": n for n in range(100)}
    started = time.perf_counter()
    _, problems = overlay_overrides(graph, overrides, None, max_keys=100)
    assert len(problems) == 100
    assert time.perf_counter() - started < 3.0
