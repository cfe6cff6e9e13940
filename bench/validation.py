"""Validation time of a 100-node graph against ComfyUI 0.3.75's real catalog (534 nodes).

    python -m bench.validation [--repeat 2000]

The graph is a chain: EmptyImage → 97 alternating image nodes (blur, invert, sharpen, flip)
→ SaveImage, plus one unreachable node that is pruned: 100 nodes, 98 links. It times
parse_workflow (size limits first) + input_overrides + WorkflowValidator, which is all the
API does with a workflow before it queues it. Target: < 5 ms.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

from comfy_serverless.validation.catalog import NodeCatalog
from comfy_serverless.validation.overrides import overlay_overrides
from comfy_serverless.validation.rules import ValidationRules
from comfy_serverless.validation.validator import WorkflowValidator
from comfy_serverless.validation.workflow import parse_workflow

CATALOG_FILE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "object_info.json"
_STEPS: list[tuple[str, dict[str, Any]]] = [
    ("ImageBlur", {"blur_radius": 3, "sigma": 1.0}),
    ("ImageInvert", {}),
    ("ImageSharpen", {"sharpen_radius": 1, "sigma": 1.0, "alpha": 1.0}),
    ("ImageFlip", {"flip_method": "x-axis: vertically"}),
]


def hundred_node_graph() -> dict[str, Any]:
    graph: dict[str, Any] = {"1": {"class_type": "EmptyImage", "inputs": {
        "width": 64, "height": 64, "batch_size": 1, "color": 0}}}
    for index in range(2, 99):
        class_type, literals = _STEPS[index % len(_STEPS)]
        graph[str(index)] = {"class_type": class_type,
                             "inputs": {"image": [str(index - 1), 0], **literals}}
    graph["99"] = {"class_type": "SaveImage", "inputs": {"filename_prefix": "bench",
                                                         "images": ["98", 0]}}
    graph["100"] = {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}}
    return graph


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2000)
    args = parser.parse_args()
    catalog = NodeCatalog.from_object_info(json.loads(CATALOG_FILE.read_text()))
    rules = ValidationRules()
    validator = WorkflowValidator(rules, catalog)
    workflow = {"nodes": hundred_node_graph()}
    samples = []
    for _ in range(args.repeat):
        started = time.perf_counter()
        parsed = parse_workflow(workflow, rules)
        graph, problems = overlay_overrides(parsed.graph, {"filename_prefix": "run"}, catalog)
        validated = validator.validate(graph, [*parsed.problems, *problems])
        samples.append(time.perf_counter() - started)
    assert len(validated.graph) == 99
    assert validated.pruned == ["100"]
    ordered = sorted(samples)
    print(f"100-node graph ({len(validated.graph)} sent, 1 pruned), {args.repeat} runs")
    print(f"median {statistics.median(samples) * 1000:.3f} ms   "
          f"p99 {ordered[int(len(ordered) * 0.99) - 1] * 1000:.3f} ms   "
          f"max {ordered[-1] * 1000:.3f} ms   (target < 5 ms)")


if __name__ == "__main__":
    main()
