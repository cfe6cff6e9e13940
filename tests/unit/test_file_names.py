"""The file-name policy (validation/files.py) against ComfyUI 0.3.75's real catalog: every
loader, every spelling of a name that ComfyUI would resolve, every output name."""

from __future__ import annotations

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


@pytest.mark.parametrize("prefix", ["ComfyUI", "renders/cat", "checkpoints/ComfyUI", "x" * 200,
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
