from typing import Any

import pytest

from comfy_serverless.errors import WorkflowInvalid
from comfy_serverless.validation.overrides import apply_overrides
from comfy_serverless.validation.rules import ValidationRules
from comfy_serverless.validation.validator import WorkflowValidator
from comfy_serverless.validation.workflow import parse_workflow, workflow_signature
from workloads.workflows import inverted_image, tiny_sd15


def _validate(raw: dict[str, Any]) -> None:
    parsed = parse_workflow(raw)
    WorkflowValidator(ValidationRules(), None).validate(parsed.graph, parsed.problems)


def _problems(raw: dict[str, Any]) -> list[dict[str, Any]]:
    with pytest.raises(WorkflowInvalid) as caught:
        _validate(raw)
    body = caught.value.body()
    assert body["status"] == "error"
    assert body["error_code"] == "WORKFLOW_VALIDATION_FAILED"
    assert "documentation_url" in body
    problems: list[dict[str, Any]] = body["details"]["validation_errors"]
    return problems


def test_spec_envelope_and_bare_graph_are_both_accepted() -> None:
    graph = inverted_image(3)
    enveloped = parse_workflow({"nodes": graph, "metadata": {"title": "t"}})
    bare = parse_workflow(graph)
    assert enveloped.graph == bare.graph == graph
    assert enveloped.metadata == {"title": "t"}


def test_ui_format_gets_export_advice() -> None:
    [problem] = _problems({"nodes": [{"id": 1}], "links": []})
    assert "API Format" in problem["suggestion"]


def test_every_structural_problem_is_reported() -> None:
    problems = _problems({
        "1": {"class_type": "EmptyImage"},
        "2": {"inputs": {}},
        "3": {"class_type": "ImageInvert", "inputs": {"image": ["99", 0]}},
    })
    assert {(p["node_id"], p["error"].split(" ")[0]) for p in problems} == {
        ("1", "Missing"), ("2", "Missing"), ("3", "Input")}


def test_cycles_are_refused() -> None:
    [problem] = _problems({
        "1": {"class_type": "ImageInvert", "inputs": {"image": ["2", 0]}},
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
    })
    assert "cycle" in problem["error"]


def test_empty_workflow_is_refused() -> None:
    assert _problems({"nodes": {}})[0]["error"] == "The workflow has no nodes"


def test_overrides_follow_the_alias_rules() -> None:
    graph = tiny_sd15(1)
    result = apply_overrides(graph, {
        "prompt": "a fox", "negative_prompt": "blurry", "seed": 7, "steps": 3,
        "width": 128, "5.height": 96, "filename_prefix": "mine",
    })
    assert result["6"]["inputs"]["text"] == "a fox"
    assert result["7"]["inputs"]["text"] == "blurry"
    assert (result["3"]["inputs"]["seed"], result["3"]["inputs"]["steps"]) == (7, 3)
    assert (result["5"]["inputs"]["width"], result["5"]["inputs"]["height"]) == (128, 96)
    assert result["9"]["inputs"]["filename_prefix"] == "mine"
    assert graph["6"]["inputs"]["text"] == "a cat", "the submitted graph is not modified"


def test_an_override_that_matches_nothing_gets_suggestions() -> None:
    with pytest.raises(WorkflowInvalid) as caught:
        apply_overrides(tiny_sd15(1), {"sede": 3})
    [problem] = caught.value.details["validation_errors"]
    assert "'seed'" in problem["suggestion"]


def test_signature_depends_on_classes_and_models_not_values() -> None:
    assert workflow_signature(tiny_sd15(1)) == workflow_signature(tiny_sd15(2, steps=5))
    assert workflow_signature(tiny_sd15(1)) != workflow_signature(inverted_image(1))


@pytest.mark.parametrize(("key", "value", "node_id", "input_name"), [
    ("prompt", "a fox", "6", "text"),
    ("negative_prompt", "blurry", "7", "text"),
    ("seed", 9, "3", "seed"),
    ("steps", 4, "3", "steps"),
    ("cfg", 3.5, "3", "cfg"),
    ("sampler_name", "heun", "3", "sampler_name"),
    ("scheduler", "karras", "3", "scheduler"),
    ("denoise", 0.5, "3", "denoise"),
    ("width", 96, "5", "width"),
    ("height", 80, "5", "height"),
    ("batch_size", 2, "5", "batch_size"),
    ("3.cfg", 2.0, "3", "cfg"),
    ("filename_prefix", "mine", "9", "filename_prefix"),
])
def test_every_alias_and_the_explicit_form(key: str, value: object, node_id: str,
                                            input_name: str) -> None:
    result = apply_overrides(tiny_sd15(1), {key: value})
    assert result[node_id]["inputs"][input_name] == value
    changed = {(n, i) for n, node in result.items() for i, v in node["inputs"].items()
               if v != tiny_sd15(1)[n]["inputs"][i]}
    assert changed == {(node_id, input_name)}


def test_noise_seed_sets_samplers_that_use_noise_seed() -> None:
    graph = tiny_sd15(1)
    graph["3"] = {"class_type": "KSamplerAdvanced", "inputs": {
        **{k: v for k, v in graph["3"]["inputs"].items() if k not in ("seed", "denoise")},
        "noise_seed": 1, "add_noise": "enable", "start_at_step": 0, "end_at_step": 20,
        "return_with_leftover_noise": "disable"}}
    for key in ("seed", "noise_seed"):
        assert apply_overrides(graph, {key: 77})["3"]["inputs"]["noise_seed"] == 77


def test_linked_inputs_are_never_overridden_by_name() -> None:
    with pytest.raises(WorkflowInvalid):
        apply_overrides(tiny_sd15(1), {"model": "x"})
