"""What a client reads: suggestions that list the allowed values, English articles, ComfyUI's
errors mapped onto the right input, and no host path in any failure."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest

from comfy_serverless.errors import EnginePromptRejected
from comfy_serverless.host_paths import scrub_host_paths
from comfy_serverless.validation.rules import ValidationRules
from comfy_serverless.worker.failures import Failure, rejection_failure
from tests.unit.test_validator import refused
from workloads.workflows import tiny_sd15


def _suggestions(workflow: dict[str, dict[str, object]]) -> dict[str, str]:
    return {e["error"]: e["suggestion"] for e in refused(workflow)["validation_errors"]}


def test_a_combo_suggestion_lists_the_first_ten_values_then_the_count() -> None:
    workflow = tiny_sd15(1)
    del workflow["3"]["inputs"]["sampler_name"]
    hint = _suggestions(workflow)["Missing required input 'sampler_name'"]
    assert hint.startswith("Set 'sampler_name' to one of euler, euler_cfg_pp, euler_ancestral, ")
    assert hint.endswith(" more)")
    assert "COMBO" not in hint


def test_an_unknown_choice_far_from_every_option_lists_them() -> None:
    workflow = tiny_sd15(1)
    workflow["3"]["inputs"]["scheduler"] = "zzzzzzzzzzzz"
    hint = _suggestions(workflow)["Value 'zzzzzzzzzzzz' is not a valid choice for 'scheduler'"]
    assert hint.startswith("Choose one of simple, sgm_uniform, karras, exponential, ")


def test_articles_follow_the_sound_of_the_noun() -> None:
    workflow = tiny_sd15(1)
    del workflow["3"]["inputs"]["latent_image"]
    del workflow["3"]["inputs"]["steps"]
    hints = _suggestions(workflow)
    assert hints["Missing required input connection 'latent_image'"].startswith(
        "Connect an Empty Latent Image node (EmptyLatentImage) to input 'latent_image'")
    assert hints["Missing required input 'steps'"] == (
        "Set 'steps' to an INT between 1 and 10000 (default 20)")


def test_comfyuis_own_input_errors_name_the_nodes_own_input() -> None:
    node_errors = {"2": {"class_type": "ImageInvert", "dependent_outputs": ["3"], "errors": [
        {"type": "required_input_missing", "message": "Required input is missing",
         "details": "image", "extra_info": {"input_name": "image"}}]}}
    [problem] = rejection_failure(EnginePromptRejected("x", node_errors)
                                  ).extra["validation_errors"]
    assert problem["suggestion"] == "Fix input 'image' of ImageInvert (node '2')"


def test_every_failure_is_scrubbed_of_host_paths() -> None:
    home, temp = str(Path.home()), tempfile.gettempdir()
    engine = f"{home}/.local/share/comfy-serverless/engine/ComfyUI"
    failure = Failure("NODE_EXECUTION_ERROR", f"Is a directory: '{engine}/output/'", False,
                      extra={"validation_errors": [{"error": f"{temp}/x/cat.png missing"}],
                             "url": "https://images.example/a/b/cat.png"})
    assert failure.message == "Is a directory: '…/'"
    assert failure.extra == {"validation_errors": [{"error": "…/cat.png missing"}],
                             "url": "https://images.example/a/b/cat.png"}
    assert scrub_host_paths(r"cannot open C:\Users\bob\ComfyUI\input\cat.png") == \
        "cannot open …/cat.png"
    assert scrub_host_paths("ratio 3/4 at 127.0.0.1:8188/view") == \
        "ratio 3/4 at 127.0.0.1:8188/view"


def _wide_catalog(options: int) -> Any:
    import copy
    import json

    from comfy_serverless.validation.catalog import NodeCatalog
    raw = json.loads((Path(__file__).parents[1] / "fixtures" / "object_info.json").read_text())
    info = copy.deepcopy(raw)
    names = [f"style_{n:05d}_{'abcdefgh' * 6}.safetensors" for n in range(options)]
    info["LoraLoaderModelOnly"]["input"]["required"]["lora_name"] = [names]
    return NodeCatalog.from_object_info(info)


def test_wrong_choices_among_many_options_take_bounded_time() -> None:
    import time
    catalog = _wide_catalog(2_000)
    workflow: dict[str, Any] = {"1": {"class_type": "CheckpointLoaderSimple",
                                      "inputs": {"ckpt_name": "tiny-sd15.safetensors"}}}
    for n in range(2, 102):
        workflow[str(n)] = {"class_type": "LoraLoaderModelOnly", "inputs": {
            "model": ["1" if n == 2 else str(n - 1), 0], "strength_model": 1.0,
            "lora_name": f"styl_{n:05d}_{'abcdefgh' * 6}.safetensors"}}
    workflow["999"] = {"class_type": "SaveImage", "inputs": {"filename_prefix": "x",
                                                            "images": ["101", 0]}}
    started = time.perf_counter()
    refused(workflow, ValidationRules(max_nodes=200), status=400, catalog=catalog)
    assert time.perf_counter() - started < 3.0


def test_one_input_gives_one_finding_and_the_findings_are_capped() -> None:
    workflow = tiny_sd15(1)
    workflow["3"]["inputs"]["note"] = [10_000_000] * 200_000
    body = refused(workflow)
    errors = body["validation_errors"]
    [note] = [e for e in errors if "'note'" in e["error"]]
    assert "(and 199999 more in this input)" in note["error"]
    many = tiny_sd15(1)
    many["3"]["inputs"].update({f"x{n}": 10_000_000 for n in range(240)})
    errors = refused(many)["validation_errors"]
    assert len(errors) == 51
    assert errors[-1]["error"] == "190 more problems were left out"


@pytest.mark.parametrize(("text", "expected"), [
    ("cannot open /srv/comfy data/output/x.png", "cannot open …/x.png"),
    ("bad path:/srv/a/b.png", "bad path:…/b.png"),
    ("see file:///srv/comfy/input/cat.png now", "see file://…/cat.png now"),
])
def test_host_paths_with_spaces_schemes_and_prefixes_are_scrubbed(text: str, expected: str
                                                                  ) -> None:
    assert scrub_host_paths(text) == expected


def test_a_configured_root_with_a_space_is_elided() -> None:
    from comfy_serverless.host_paths import elide_host_roots
    elide_host_roots(["/srv/comfy data"])
    assert scrub_host_paths("no /srv/comfy data/models/a b.ckpt") == "no …/a b.ckpt"
