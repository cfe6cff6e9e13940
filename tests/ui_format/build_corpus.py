"""Regenerates tests/fixtures/ui_workflows/ in the real editor (see corpus.js).

Also writes the named files of the end-to-end tests (see named.js).
Usage: python -m tests.ui_format.build_corpus BASE_URL [COUNT] — BASE_URL is a ComfyUI
serving the pinned frontend, with the tiny checkpoint in its models folder.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from tests.ui_format.frontend import open_frontend
from tests.workflows import TINY_CHECKPOINT

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "ui_workflows"
BUILDER = (Path(__file__).parent / "corpus.js").read_text()
NAMED_BUILDER = (Path(__file__).parent / "named.js").read_text()
NAMED = ("tiny-sd15", "constructs")


def _as_an_old_file(saved: dict[str, Any]) -> None:
    """As saved before some options existed: the last widget value of each EmptyImage and
    KSampler is missing, so the editor gives those options their defaults."""
    for node in saved["nodes"]:
        if node["type"] in ("EmptyImage", "KSampler") and node.get("widgets_values"):
            node["widgets_values"] = node["widgets_values"][:-1]


def main(base_url: str, count: int) -> None:
    CORPUS.mkdir(parents=True, exist_ok=True)
    with open_frontend(base_url) as frontend:
        for seed in range(1, count + 1):
            saved = frontend.run(BUILDER, {"seed": seed, "checkpoint": TINY_CHECKPOINT})
            if seed % 4 == 0:
                _as_an_old_file(saved)
            path = CORPUS / f"generated-{seed:03d}.json"
            path.write_text(json.dumps(saved, sort_keys=True) + "\n")
        for kind in NAMED:
            saved = frontend.run(NAMED_BUILDER, {"kind": kind, "checkpoint": TINY_CHECKPOINT})
            (CORPUS / f"{kind}.json").write_text(json.dumps(saved, indent=1) + "\n")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 110)
