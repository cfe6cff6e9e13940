"""Each submission marks the output nodes of its prompt, and only them, and names the
nodes the worker added; the user's workflow itself is never changed."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from comfy_serverless.engine.comfyui.fresh_outputs import (
    RUN_MARK,
    TUNING_MARK,
    output_classes,
    with_fresh_outputs,
    worker_additions,
)
from comfy_serverless.engine.comfyui.tuning import EngineTuning

CATALOG = Path(__file__).resolve().parents[1] / "fixtures" / "object_info.json"


def test_the_catalogs_output_nodes_are_every_kind_of_writer() -> None:
    outputs = output_classes(json.loads(CATALOG.read_text()))
    assert {"SaveImage", "PreviewImage"} <= outputs
    assert "ImageInvert" not in outputs
    assert "CheckpointLoaderSimple" not in outputs


def test_only_output_nodes_are_marked_with_the_run() -> None:
    workflow = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 8}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0]}},
        "3": {"class_type": "SaveAudio", "inputs": {"audio": ["4", 0]}},
    }
    before = copy.deepcopy(workflow)
    marked = with_fresh_outputs(workflow, frozenset({"SaveImage", "SaveAudio"}), "run-1")
    assert marked["2"]["inputs"] == {"images": ["1", 0], RUN_MARK: "run-1"}
    assert marked["3"]["inputs"][RUN_MARK] == "run-1"
    assert marked["1"] is workflow["1"]
    assert workflow == before


def test_the_nodes_the_worker_added_are_named() -> None:
    workflow = {"1": {"class_type": "EmptyImage", "inputs": {}}}
    pinned = {**workflow, "cs_warm_0": {"class_type": "CheckpointLoaderSimple", "inputs": {}}}
    assert worker_additions(pinned, workflow) == {"cs_worker_nodes": ["cs_warm_0"]}
    assert worker_additions(workflow, workflow) == {}


def test_an_exact_run_marks_every_node_and_a_default_run_none() -> None:
    workflow = {"1": {"class_type": "EmptyImage", "inputs": {"width": 8}},
                "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0]}}}
    exact = EngineTuning(optimize=False)
    marked = with_fresh_outputs(workflow, frozenset({"SaveImage"}), "run-1", exact.cache_mark)
    assert marked["1"]["inputs"] == {"width": 8, TUNING_MARK: "exact"}
    assert marked["2"]["inputs"] == {"images": ["1", 0], RUN_MARK: "run-1",
                                     TUNING_MARK: "exact"}
    for default_run in (EngineTuning(), EngineTuning(gpu_memory_fraction=0.5)):
        mark = default_run.cache_mark
        assert with_fresh_outputs(workflow, frozenset(), "run-2", mark) == workflow
