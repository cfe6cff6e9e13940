"""The validator against ComfyUI 0.3.75's real node catalog (the shared fixture)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from comfy_serverless.errors import ApiError
from comfy_serverless.validation.catalog import NodeCatalog
from comfy_serverless.validation.rules import ValidationRules
from comfy_serverless.validation.validator import ValidatedWorkflow, WorkflowValidator
from comfy_serverless.validation.workflow import parse_workflow
from workloads.workflows import inverted_image, tiny_sd15

# ComfyUI 0.3.75's GET /object_info, as the shared testbed recorded it.
FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "object_info.json"


def _object_info() -> dict[str, Any]:
    info: dict[str, Any] = json.loads(FIXTURE.read_text())
    info["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"][0] = [
        "tiny-sd15.safetensors", "sd_xl_base_1.0.safetensors"]
    return info


CATALOG = NodeCatalog.from_object_info(_object_info())


def validate(workflow: dict[str, Any], rules: ValidationRules | None = None,
             catalog: NodeCatalog | None = CATALOG) -> ValidatedWorkflow:
    parsed = parse_workflow(workflow)
    return WorkflowValidator(rules or ValidationRules(), catalog).validate(
        parsed.graph, parsed.problems)


def refused(workflow: dict[str, Any], rules: ValidationRules | None = None,
            status: int = 400, catalog: NodeCatalog | None = CATALOG) -> dict[str, Any]:
    with pytest.raises(ApiError) as caught:
        validate(workflow, rules, catalog)
    assert caught.value.status_code == status, caught.value.body()
    body = caught.value.body()
    assert body["documentation_url"]
    details: dict[str, Any] = body["details"]
    return details


def test_good_workflows_pass_unchanged() -> None:
    for workflow in (tiny_sd15(3), inverted_image(5)):
        assert validate(workflow).graph == workflow


def test_the_specs_own_example_names_the_missing_model_and_loader() -> None:
    spec_example = {"nodes": {
        "1": {"inputs": {"text": "beautiful landscape"}, "class_type": "CLIPTextEncode"},
        "2": {"inputs": {"noise": ["3", 0], "steps": 20}, "class_type": "KSampler"},
    }}
    details = refused(spec_example)
    errors = {(e["node_id"], e["error"]): e["suggestion"] for e in details["validation_errors"]}
    suggestion = errors[("2", "Missing required input connection 'model'")]
    assert suggestion.startswith(
        "Connect a Load Checkpoint node (CheckpointLoaderSimple) to input 'model'; "
        "other nodes that output MODEL: ")
    assert "CheckpointLoaderSimple" in details["missing_nodes"]
    assert ("1", "Missing required input connection 'clip'") in errors
    assert (None, "The workflow has no output node") in errors


def test_clip_into_conditioning_is_an_invalid_connection() -> None:
    workflow = tiny_sd15(1)
    workflow["3"]["inputs"]["positive"] = ["4", 1]
    details = refused(workflow)
    assert details["invalid_connections"] == [{
        "from_node": "4", "from_socket": "CLIP", "to_node": "3", "to_socket": "positive",
        "error": "Type mismatch: CLIP cannot connect to CONDITIONING"}]


def test_an_output_index_past_the_end_is_refused() -> None:
    workflow = tiny_sd15(1)
    workflow["8"]["inputs"]["vae"] = ["4", 3]
    [problem] = refused(workflow)["validation_errors"]
    assert "has 3 output(s)" in problem["error"]


def test_unknown_class_is_422_with_did_you_mean() -> None:
    workflow = inverted_image(1)
    workflow["2"]["class_type"] = "ImageInvertt"
    details = refused(workflow, status=422)
    [problem] = details["validation_errors"]
    assert problem["suggestion"] == "Did you mean ImageInvert?"
    assert details["missing_nodes"] == ["ImageInvertt"]


def test_a_model_on_no_worker_is_422_with_the_nearest_names() -> None:
    workflow = tiny_sd15(1)
    workflow["4"]["inputs"]["ckpt_name"] = "tiny_sd15.safetensors"
    [problem] = refused(workflow, status=422)["validation_errors"]
    assert problem["suggestion"].startswith("Nearest: tiny-sd15.safetensors")


def test_values_outside_lists_ranges_and_types_are_refused() -> None:
    workflow = tiny_sd15(1)
    workflow["3"]["inputs"].update(sampler_name="eulr", steps=0, cfg="much", denoise=1.5)
    errors = {e["error"] for e in refused(workflow)["validation_errors"]}
    assert errors == {
        "Value 'eulr' is not a valid choice for 'sampler_name'",
        "Value 0 for 'steps' is smaller than its min of 1",
        "Invalid value for 'cfg': expected a finite number, got 'much'",
        "Value 1.5 for 'denoise' is bigger than its max of 1.0",
    }


def test_newer_style_combo_options_are_checked() -> None:
    workflow = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1,
                                                      "color": 0}},
        "2": {"class_type": "ImageBlend", "inputs": {"image1": ["1", 0], "image2": ["1", 0],
                                                      "blend_factor": 0.5,
                                                      "blend_mode": "shiny"}},
        "3": {"class_type": "SaveImage", "inputs": {"filename_prefix": "x", "images": ["2", 0]}},
    }
    [problem] = refused(workflow)["validation_errors"]
    assert problem["error"] == "Value 'shiny' is not a valid choice for 'blend_mode'"


def test_values_are_normalised_as_documented() -> None:
    workflow = tiny_sd15(1)
    workflow["3"]["inputs"].update(steps=7.0, cfg="6.5", seed="42")
    workflow["6"]["inputs"]["text"] = 12
    graph = validate(workflow).graph
    assert graph["3"]["inputs"]["steps"] == 7
    assert isinstance(graph["3"]["inputs"]["steps"], int)
    assert graph["3"]["inputs"]["cfg"] == 6.5
    assert graph["3"]["inputs"]["seed"] == 42
    assert graph["6"]["inputs"]["text"] == "12"


@pytest.mark.parametrize(("value", "reason"), [
    (7.5, "expected an integer, got 7.5"), (True, "expected an integer, got a boolean"),
    ("seven", "expected an integer, got 'seven'"),
])
def test_lossy_coercions_are_refused(value: Any, reason: str) -> None:
    workflow = tiny_sd15(1)
    workflow["3"]["inputs"]["steps"] = value
    [problem] = refused(workflow)["validation_errors"]
    assert problem["error"] == f"Invalid value for 'steps': {reason}"


def test_unreachable_nodes_are_pruned_with_a_warning() -> None:
    workflow = inverted_image(1)
    workflow["9"] = {"class_type": "ImageBlur", "inputs": {"image": ["1", 0], "blur_radius": 1,
                                                           "sigma": 1.0}}
    validated = validate(workflow)
    assert "9" not in validated.graph
    assert validated.pruned == ["9"]
    assert validated.warnings == [
        "Node '9' (ImageBlur) leads to no output node; it was not sent to ComfyUI"]


def test_a_disconnected_node_without_inputs_is_refused() -> None:
    workflow = inverted_image(1)
    workflow["9"] = {"class_type": "EmptyImage"}
    [problem] = refused(workflow)["validation_errors"]
    assert (problem["node_id"], problem["error"]) == ("9", "Missing required field 'inputs'")


def test_a_link_to_a_missing_node_in_an_undeclared_input_is_refused() -> None:
    workflow = inverted_image(1)
    workflow["2"]["inputs"]["extra"] = ["77", 0]
    [problem] = refused(workflow)["validation_errors"]
    assert problem["error"] == "Input 'extra' links to node '77', which does not exist"


def test_a_literal_where_a_link_belongs_is_refused() -> None:
    workflow = inverted_image(1)
    workflow["2"]["inputs"]["image"] = "pixels"
    [problem] = refused(workflow)["validation_errors"]
    assert problem["error"].startswith("Input 'image' needs a connection")


# --------------------------------------------------------------------------- §5.1 limits


def _text(length: int) -> dict[str, Any]:
    workflow = tiny_sd15(1)
    workflow["6"]["inputs"]["text"] = "a" * length
    return workflow


def test_max_string_length_boundary() -> None:
    validate(_text(10_000))
    [problem] = refused(_text(10_001))["validation_errors"]
    assert "max_string_length 10000" in problem["error"]


def test_max_numeric_value_boundary_with_the_documented_exemptions() -> None:
    rules = ValidationRules(max_numeric_value=1000)
    workflow = tiny_sd15(1)
    workflow["3"]["inputs"]["steps"] = 1000
    validate(workflow, rules)
    workflow["3"]["inputs"]["steps"] = 1001
    [problem] = refused(workflow, rules)["validation_errors"]
    assert problem["error"] == "Input 'steps' is 1001, beyond max_numeric_value 1000"
    seeded = tiny_sd15(2**64 - 1)
    validate(seeded)
    seeded["3"]["inputs"]["seed"] = 2**64
    [problem] = refused(seeded)["validation_errors"]
    assert problem["error"] == f"Value {2**64} for 'seed' is bigger than its max of {2**64 - 1}"
    validate(inverted_image(0xFFFFFF))



def test_node_and_connection_count_boundaries() -> None:
    rules = ValidationRules(max_nodes=3, max_connections=2)
    validate(inverted_image(1), rules)
    workflow = inverted_image(1)
    workflow["4"] = {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}}
    errors = {e["error"] for e in refused(workflow, rules)["validation_errors"]}
    assert errors == {"The workflow has 4 nodes, more than max_nodes 3",
                      "The workflow has 3 connections, more than max_connections 2"}


def test_control_characters_are_refused_but_newlines_and_tabs_pass() -> None:
    validate(_text(0) | {"6": {"class_type": "CLIPTextEncode",
                               "inputs": {"text": "a\tb\nc\r", "clip": ["4", 1]}}})
    workflow = tiny_sd15(1)
    workflow["6"]["inputs"]["text"] = "a\x00b"
    [problem] = refused(workflow)["validation_errors"]
    assert problem["error"] == "Input 'text' contains control characters"


def test_url_schemes_are_limited() -> None:
    workflow = tiny_sd15(1)
    workflow["6"]["inputs"]["text"] = "https://example.com/cat"
    validate(workflow)
    workflow["6"]["inputs"]["text"] = "http://example.com/cat"
    [problem] = refused(workflow)["validation_errors"]
    assert "allowed schemes: https" in problem["error"]


def test_inline_images_are_limited_by_size_and_format() -> None:
    png = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
    gif = "data:image/gif;base64,R0lGODlhAQABAAAAACw="
    workflow = tiny_sd15(1)
    for value, ok in ((png, True), (gif, False)):
        workflow["6"]["inputs"]["text"] = value
        if ok:
            validate(workflow)
        else:
            assert "supported format" in refused(workflow)["validation_errors"][0]["error"]
    payload_bytes = len(png.split(",", 1)[1]) * 3 // 4
    workflow["6"]["inputs"]["text"] = png
    validate(workflow, ValidationRules(max_image_bytes=payload_bytes))
    small = ValidationRules(max_image_bytes=payload_bytes - 1)
    [problem] = refused(workflow, small)["validation_errors"]
    assert f"larger than {payload_bytes - 1} bytes" in problem["error"]


def test_blacklist_and_whitelist() -> None:
    workflow = inverted_image(1)
    workflow["2"]["class_type"] = "ExecuteCode"
    [problem] = refused(workflow, status=422)["validation_errors"]
    assert problem["error"] == "Node class 'ExecuteCode' is not allowed on this service"
    only_empty = ValidationRules(node_whitelist=("EmptyImage", "SaveImage"))
    assert len(refused(inverted_image(1), only_empty, status=422)["validation_errors"]) == 1


def test_custom_nodes_need_a_verified_pack() -> None:
    info = _object_info()
    info["FancyBlur"] = {**info["ImageBlur"], "name": "FancyBlur",
                         "python_module": "custom_nodes.fancy_pack.nodes"}
    catalog = NodeCatalog.from_object_info(info)
    workflow = inverted_image(1)
    workflow["2"] = {"class_type": "FancyBlur",
                     "inputs": {"image": ["1", 0], "blur_radius": 1, "sigma": 1.0}}
    parsed = parse_workflow(workflow)
    with pytest.raises(ApiError) as caught:
        WorkflowValidator(ValidationRules(), catalog).validate(parsed.graph)
    assert caught.value.status_code == 422
    verified = ValidationRules(verified_node_packs=("fancy_pack",))
    WorkflowValidator(verified, catalog).validate(parsed.graph)
    unverified_ok = ValidationRules(custom_nodes_require_verification=False)
    WorkflowValidator(unverified_ok, catalog).validate(parsed.graph)
    disabled = ValidationRules(custom_nodes_enabled=False, verified_node_packs=("fancy_pack",))
    with pytest.raises(ApiError):
        WorkflowValidator(disabled, catalog).validate(parsed.graph)


def _with_blur_from(module: str) -> NodeCatalog:
    """The test catalog with ImageBlur's copy coming from `module`."""
    info = _object_info()
    info["ImageBlur"] = {**info["ImageBlur"], "python_module": module}
    return NodeCatalog.from_object_info(info)


def test_a_class_counts_as_every_pack_any_worker_takes_it_from() -> None:
    """Verified per node class, not per pack name: a class that one worker's catalog takes
    from a verified pack and another's from an unverified one (or that one has as core and
    another from a pack) may run either copy, so it is refused unless each pack is verified."""
    workflow = inverted_image(1)
    workflow["2"] = {"class_type": "ImageBlur",
                     "inputs": {"image": ["1", 0], "blur_radius": 1, "sigma": 1.0}}
    graph = parse_workflow(workflow).graph
    vouched = ValidationRules(verified_node_packs=("pack_a",))
    for other in ("custom_nodes.pack_b.nodes", "nodes"):
        merged = NodeCatalog.merged([_with_blur_from("custom_nodes.pack_a.nodes"),
                                     _with_blur_from(other)])
        if other == "nodes":  # core on one worker, pack a (verified) on the other: fine
            WorkflowValidator(vouched, merged).validate(graph)
            continue
        with pytest.raises(ApiError) as caught:
            WorkflowValidator(vouched, merged).validate(graph)
        assert "'pack_b'" in str(caught.value.body()), caught.value.body()
    overridden = NodeCatalog.merged([CATALOG, _with_blur_from("custom_nodes.pack_b.nodes")])
    assert not overridden.nodes["ImageBlur"].is_core  # a pack overriding a core class
    with pytest.raises(ApiError):
        WorkflowValidator(vouched, overridden).validate(graph)
    both = ValidationRules(verified_node_packs=("pack_a", "pack_b"))
    WorkflowValidator(both, NodeCatalog.merged([_with_blur_from("custom_nodes.pack_a.nodes"),
                                                _with_blur_from("custom_nodes.pack_b.nodes")])
                      ).validate(graph)


def test_without_a_catalog_only_structure_and_limits_are_checked() -> None:
    workflow = inverted_image(1)
    workflow["2"]["class_type"] = "NoSuchNode"
    assert validate(workflow, catalog=None).graph == workflow
    workflow["2"]["inputs"]["note"] = "x" * 10_001
    with pytest.raises(ApiError):
        validate(workflow, catalog=None)


def test_merged_catalogs_accept_any_workers_models() -> None:
    """A model that only one worker holds is refused by the other worker's catalog alone,
    and accepted by the fleet's merged catalog, unchanged."""
    other = _object_info()
    other["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"][0] = ["only-b.safetensors"]
    merged = NodeCatalog.merged([CATALOG, NodeCatalog.from_object_info(other)])
    workflow = tiny_sd15(1)
    workflow["4"]["inputs"]["ckpt_name"] = "only-b.safetensors"
    alone = refused(workflow, status=422)
    assert any("only-b.safetensors" in str(error) for error in alone["validation_errors"]), alone
    parsed = parse_workflow(workflow)
    validated = WorkflowValidator(ValidationRules(), merged).validate(parsed.graph)
    assert validated.graph["4"]["inputs"]["ckpt_name"] == "only-b.safetensors"


def test_an_object_input_that_names_a_file_is_refused_with_or_without_a_catalog() -> None:
    """Preview3D reports its camera_info object, and the worker collects and deletes what a
    node reports: no object literal may name a file (validation/files.py)."""
    camera = {"position": {"x": 0}, "filename": "shared.png", "type": "input"}
    workflow = {
        "1": {"class_type": "Load3D", "inputs": {
            "model_file": "m.glb", "width": 64, "height": 64,
            "image": {"image": "", "mask": "", "normal": "", "recording": "",
                      "camera_info": camera}}},
        "2": {"class_type": "Preview3D", "inputs": {"model_file": ["1", 2],
                                                    "camera_info": ["1", 4]}},
    }
    for catalog in (CATALOG, None):
        errors = [e["error"] for e in refused(workflow, catalog=catalog)["validation_errors"]]
        assert any("object that names a file" in error for error in errors), errors
    harmless = {"1": {"class_type": "Custom", "inputs": {"settings": {"zoom": 2, "x": [1]}}}}
    validate(harmless, catalog=None)
