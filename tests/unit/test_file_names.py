"""The file-name policy (validation/files.py) against ComfyUI 0.3.75's real catalog: every
loader, every spelling of a name that ComfyUI would resolve, every output name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from comfy_serverless.validation.files import name_problems, names_a_file
from comfy_serverless.validation.rules import ValidationRules
from tests.unit.test_validator import CATALOG, refused, validate

# Every input of the catalog that names a file in ComfyUI's input, output or temp folders.
LOADERS = sorted((spec.class_type, name) for spec in CATALOG.nodes.values()
                 for name, entry in spec.inputs.items()
                 if names_a_file(spec.class_type, name, entry))

OTHER_TENANTS_FILE = "inv_00001_.png"
SPELLINGS = [
    f"{OTHER_TENANTS_FILE} [output]", f"{OTHER_TENANTS_FILE}[output]",
    f"{OTHER_TENANTS_FILE} [temp]", f"{OTHER_TENANTS_FILE}[temp]",
    "example.png [input]", "example.png[input]", "x[output]", "[output]",
    f"{OTHER_TENANTS_FILE} [OUTPUT]", f"{OTHER_TENANTS_FILE} [ output ]",
    "comfy-serverless/exec_0123456789abcdef01234567_0.png",
    "sub/example.png", "../output/inv_00001_.png", "./example.png", "a//example.png",
    "/root/.bashrc", "C:/Windows/win.ini", "c:example.png", "..\\output\\inv.png",
    "sub\\example.png", "%2e%2e%2foutput%2finv.png", "..%2Finv.png", "example.png\x00.jpg",
    "example.png\n", "\uff0e\uff0e\uff0foutput\uff0finv.png", "example\u2024png",
    "\uff45xample.png", "never-uploaded.png", "", " example.png",
]


def test_the_loaders_are_derived_from_the_catalog() -> None:
    assert {("LoadImage", "image"), ("LoadImageMask", "image"), ("LoadImageOutput", "image"),
            ("LoadAudio", "audio"), ("LoadVideo", "file"), ("Load3D", "model_file"),
            ("LoadLatent", "latent")} <= set(LOADERS)
    assert ("CLIPTextEncode", "text") not in LOADERS


@pytest.mark.parametrize("loader", LOADERS)
@pytest.mark.parametrize("spelling", SPELLINGS)
def test_no_spelling_of_an_unpublished_name_reaches_any_loader(
    loader: tuple[str, str], spelling: str
) -> None:
    class_type, name = loader
    spec = CATALOG.nodes[class_type].inputs[name]
    problems = name_problems(class_type, name, spelling, spec, ValidationRules())
    assert problems, f"{class_type}.{name} would read {spelling!r}"
    without_catalog = name_problems(class_type, name, spelling, None, ValidationRules())
    assert [p.error for p in problems] == [p.error for p in without_catalog]


def test_a_published_file_given_exactly_as_listed_passes() -> None:
    workflow = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "example.png"}},
        "2": {"class_type": "SaveImage", "inputs": {"filename_prefix": "x", "images": ["1", 0]}},
    }
    assert validate(workflow).graph == workflow


def test_an_annotated_name_is_refused_at_submit_with_the_published_files() -> None:
    workflow: dict[str, Any] = {
        "1": {"class_type": "LoadImage", "inputs": {"image": f"{OTHER_TENANTS_FILE} [output]"}},
        "2": {"class_type": "SaveImage", "inputs": {"filename_prefix": "x", "images": ["1", 0]}},
    }
    [problem] = refused(workflow)["validation_errors"]
    assert problem == {
        "node_id": "1",
        "error": f"'image' names '{OTHER_TENANTS_FILE} [output]', with a folder annotation: "
                 "only published files may be read",
        "suggestion": "Use a published file: example.png; or give an image input an https URL "
                      "or base64 data"}


def test_without_a_catalog_no_file_is_published() -> None:
    workflow: dict[str, Any] = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "example.png"}},
        "2": {"class_type": "SaveImage", "inputs": {"filename_prefix": "x", "images": ["1", 0]}},
    }
    [problem] = refused(workflow, catalog=None)["validation_errors"]
    assert problem["error"] == "'image' names 'example.png', which is not a published input file"
    workflow["1"]["inputs"]["image"] = "https://images.example/cat.png"
    validate(workflow, catalog=None)


def test_urls_and_base64_are_left_to_staging_only_on_image_inputs() -> None:
    for value in ("https://images.example/cat.png", "data:image/png;base64,iVBORw0KGgo=",
                  "DATA:image/png;base64,iVBORw0KGgo="):
        assert name_problems("LoadImage", "image", value,
                             CATALOG.nodes["LoadImage"].inputs["image"], ValidationRules()) == []
        assert name_problems("LoadAudio", "audio", value,
                             CATALOG.nodes["LoadAudio"].inputs["audio"], ValidationRules())


def test_reading_a_folder_of_the_output_folder_is_refused() -> None:
    problems = name_problems("LoadTrainingDataset", "folder_name", "training_dataset", None,
                             ValidationRules())
    assert problems[0].error.startswith("'LoadTrainingDataset' reads 'folder_name'")


@pytest.mark.parametrize("prefix", [
    "../../../tmp/x", "/tmp/x", "x" * 3_000, "é" * 101, "renders/../../x", "renders//x",
    "renders/", "./x", "..\\x", "C:/x", "%2e%2e/x", "x\x00", "x\ty", "\uff0e\uff0e/x", "",
])
@pytest.mark.parametrize(("class_type", "name"), [
    ("SaveImage", "filename_prefix"), ("PreviewAny", "filename_prefix"),
    ("SaveImageDataSetToFolder", "folder_name"), ("SaveLoRA", "prefix"),
])
def test_output_names_that_leave_the_output_folder_are_refused(
    class_type: str, name: str, prefix: str
) -> None:
    assert name_problems(class_type, name, prefix, None, ValidationRules())


@pytest.mark.parametrize("prefix", ["ComfyUI", "renders/cat", "renders/checkpoints", "x" * 200,
                                    "chat [output]", "café"])
def test_ordinary_output_names_pass(prefix: str) -> None:
    assert name_problems("SaveImage", "filename_prefix", prefix, None, ValidationRules()) == []


def test_a_bad_filename_prefix_is_refused_by_the_validator_with_and_without_a_catalog() -> None:
    workflow: dict[str, Any] = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1,
                                                      "color": 0}},
        "2": {"class_type": "SaveImage", "inputs": {"filename_prefix": "../../../tmp/x",
                                                     "images": ["1", 0]}},
    }
    for catalog in (CATALOG, None):
        details = refused(workflow, catalog=catalog)
        assert [p["error"] for p in details["validation_errors"]] == [
            "'filename_prefix' has an empty, '.' or '..' path segment"]


# ------------------------------------------------------------ an independent list (finding 9)
# Built from ComfyUI's source, not from names_a_file: see the comment at its top.
_LISTED = (Path(__file__).parents[1] / "fixtures" / "comfyui_file_inputs.txt").read_text()
FILE_INPUTS = [tuple(line.split()) for line in _LISTED.splitlines()
               if line.strip() and not line.startswith("#")]
OUTSIDE = "../input/x"


def _entry(line: tuple[str, ...]) -> tuple[str, str, str]:
    node_input, kind = line
    class_type, _, name = node_input.partition(".")
    return class_type, name, kind


ENTRIES = [_entry(line) for line in FILE_INPUTS]


def test_the_independent_list_holds_every_input_the_catalog_marks() -> None:
    listed_inputs = {(class_type, name) for class_type, name, _ in ENTRIES}
    assert set(LOADERS) <= listed_inputs
    assert all(class_type in CATALOG.nodes for class_type, _, _ in ENTRIES)


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: f"{e[0]}.{e[1]}")
def test_every_file_input_of_comfyui_refuses_a_literal_outside_its_folder(
    entry: tuple[str, str, str]
) -> None:
    class_type, name, kind = entry
    spec = CATALOG.nodes[class_type].inputs[name]
    values: list[Any] = [OUTSIDE, {"__value__": OUTSIDE}, "/tmp/x", {"__value__": "/tmp/x"}]
    if kind == "loader":
        values.append({"__value__": "a.png [output]"})
    for value in values:
        assert name_problems(class_type, name, value, spec, ValidationRules()), (
            f"{class_type}.{name} takes {value!r}")
        assert name_problems(class_type, name, value, None, ValidationRules()), (
            f"{class_type}.{name} takes {value!r} without a catalog")


def _linked(class_type: str, name: str) -> dict[str, Any]:
    return {
        "1": {"class_type": "PrimitiveString", "inputs": {"value": OUTSIDE}},
        "2": {"class_type": class_type, "inputs": {name: ["1", 0]}},
        "3": {"class_type": "PreviewAny", "inputs": {"source": ["2", 0]}},
    }


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: f"{e[0]}.{e[1]}")
def test_every_file_input_of_comfyui_refuses_a_link(entry: tuple[str, str, str]) -> None:
    class_type, name, _ = entry
    workflow = _linked(class_type, name)
    if not CATALOG.nodes[class_type].outputs:
        del workflow["3"]
    for catalog in (CATALOG, None):
        errors = [e["error"] for e in refused(workflow, catalog=catalog)["validation_errors"]
                  if e["node_id"] == "2"]
        assert any(f"'{name}'" in error and "link" in error for error in errors), (
            class_type, name, catalog is None, errors)


@pytest.mark.parametrize("folder", ["comfy-serverless", "3d", "."])
@pytest.mark.parametrize("reader", ["LoadImageDataSetFromFolder",
                                    "LoadImageTextDataSetFromFolder"])
def test_no_subfolder_of_the_input_folder_can_be_read(reader: str, folder: str) -> None:
    spec = CATALOG.nodes[reader].inputs["folder"]
    assert name_problems(reader, "folder", folder, spec, ValidationRules())
    assert name_problems(reader, "folder", folder, None, ValidationRules())


@pytest.mark.parametrize("prefix", ["checkpoints/ComfyUI", "loras/x", "clip/x", "vae/x",
                                    "diffusion_models/x", "LoRAs/x", "checkpoints"])
def test_no_output_name_lands_in_a_model_folder(prefix: str) -> None:
    for class_type, name in (("SaveImage", "filename_prefix"), ("SaveLoRA", "prefix"),
                             ("SaveImageDataSetToFolder", "folder_name")):
        spec = CATALOG.nodes[class_type].inputs[name]
        [problem] = name_problems(class_type, name, prefix, spec, ValidationRules())
        assert "model folder" in problem.error


@pytest.mark.parametrize("saver", ["CheckpointSave", "ImageOnlyCheckpointSave", "ModelSave",
                                   "CLIPSave", "VAESave", "LoraSave", "SaveLoRA"])
def test_the_model_savers_are_refused_unless_the_operator_allows_them(saver: str) -> None:
    workflow = {"1": {"class_type": saver, "inputs": {}}}
    for catalog in (CATALOG, None):
        errors = [e["error"] for e in refused(workflow, catalog=catalog)["validation_errors"]]
        assert f"Node class '{saver}' saves a model, which this service does not allow" in errors
    allowed = ValidationRules(allow_model_savers=True)
    errors = [e["error"] for e in refused(workflow, allowed)["validation_errors"]]
    assert not [error for error in errors if "saves a model" in error]


def test_a_wrapped_value_is_checked_as_comfyui_unwraps_it() -> None:
    workflow: dict[str, Any] = {
        "1": {"class_type": "LoadImage", "inputs": {"image": {"__value__": "a.png [output]"}}},
        "2": {"class_type": "SaveImage", "inputs": {
            "filename_prefix": {"__value__": "../../etc/x"}, "images": ["1", 0]}},
        "3": {"class_type": "WebcamCapture", "inputs": {"image": "x.png [output]"}},
    }
    errors = {e["node_id"] for e in refused(workflow, catalog=None)["validation_errors"]}
    assert errors == {"1", "2", "3"}
