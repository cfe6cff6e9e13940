"""What a client reads: suggestions that list the allowed values, English articles, ComfyUI's
errors mapped onto the right input, and no host path in any failure."""

from __future__ import annotations

import tempfile
from pathlib import Path

from comfy_serverless.errors import EnginePromptRejected
from comfy_serverless.worker.failures import Failure, rejection_failure, scrub_host_paths
from tests.unit.test_validator import refused
from tests.workflows import tiny_sd15


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
