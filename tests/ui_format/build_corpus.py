"""Regenerates tests/fixtures/ui_workflows/ in the real editor (see corpus.js).

Also writes the named files of the end-to-end tests (see named.js).
Usage: python -m tests.ui_format.build_corpus BASE_URL [COUNT] [GROUP_COUNT] — BASE_URL is a ComfyUI
serving the pinned frontend, with the tiny checkpoint in its models folder.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from tests.ui_format.frontend import Frontend, open_frontend
from workloads.workflows import TINY_CHECKPOINT

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "ui_workflows"
BUILDER = (Path(__file__).parent / "corpus.js").read_text()
NAMED_BUILDER = (Path(__file__).parent / "named.js").read_text()
NAMED = ("tiny-sd15", "constructs")
GROUP_BUILDER = (Path(__file__).parent / "groups.js").read_text()
_GROUP_DONE = "() => window.app.graph.nodes.some((node) => node.type.startsWith('workflow>'))"
_GROUP_AFTER = """(seed) => {
  const group = window.app.graph.nodes.find((node) => node.type.startsWith('workflow>'));
  if (seed % 3 === 1 && group.widgets?.length) group.widgets[0].value = 50 + seed;
  if (seed % 5 === 2) group.mode = 4;
  if (seed % 7 === 3) window.app.graph.add(window.LiteGraph.createNode(group.type));
  return window.app.graph.serialize();
}"""


def _as_an_old_file(saved: dict[str, Any]) -> None:
    """As saved before some options existed: the last widget value of each EmptyImage and
    KSampler is missing, so the editor gives those options their defaults."""
    for node in saved["nodes"]:
        if node["type"] in ("EmptyImage", "KSampler") and node.get("widgets_values"):
            node["widgets_values"] = node["widgets_values"][:-1]


def _group_file(frontend: Frontend, seed: int) -> dict[str, Any]:
    """A graph whose selected nodes become a group node, with the editor's own command and
    its name prompt."""
    frontend.run(GROUP_BUILDER, {"seed": seed, "checkpoint": TINY_CHECKPOINT})
    # Not awaited: the command waits for the name prompt that the next lines answer.
    frontend.run("() => { window.app.extensionManager.command.execute("
                 "'Comfy.GroupNode.ConvertSelectedNodesToGroupNode'); return true; }")
    frontend.page.fill(".p-dialog input", f"group{seed}")
    frontend.page.keyboard.press("Enter")
    frontend.page.wait_for_function(_GROUP_DONE, timeout=10_000)
    saved: dict[str, Any] = frontend.run(_GROUP_AFTER, seed)
    return saved


def main(base_url: str, count: int, groups: int) -> None:
    CORPUS.mkdir(parents=True, exist_ok=True)
    with open_frontend(base_url) as frontend:
        for seed in range(1, count + 1):
            saved = frontend.run(BUILDER, {"seed": seed, "checkpoint": TINY_CHECKPOINT})
            if seed % 4 == 0:
                _as_an_old_file(saved)
            path = CORPUS / f"generated-{seed:03d}.json"
            path.write_text(json.dumps(saved, sort_keys=True) + "\n")
        for seed in range(1, groups + 1):
            path = CORPUS / f"group-{seed:03d}.json"
            path.write_text(json.dumps(_group_file(frontend, seed), sort_keys=True) + "\n")
        for kind in NAMED:
            saved = frontend.run(NAMED_BUILDER, {"kind": kind, "checkpoint": TINY_CHECKPOINT})
            (CORPUS / f"{kind}.json").write_text(json.dumps(saved, indent=1) + "\n")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 110,
         int(sys.argv[3]) if len(sys.argv) > 3 else 20)
