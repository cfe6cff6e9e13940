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
from tests.workflows import tiny_sd15


def answer(workflow: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    parsed = parse_workflow(workflow, ValidationRules())
    graph, problems = overlay_overrides(parsed.graph, overrides, CATALOG)
    with pytest.raises(ApiError) as caught:
        WorkflowValidator(ValidationRules(), CATALOG).validate(graph, [*parsed.problems,
                                                                       *problems])
    assert caught.value.status_code == 400
    return caught.value.body()["details"]


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
