"""The CLI's pieces without a service: `--set` values and the progress bar's line."""

from __future__ import annotations

import io

from comfy_serverless_client.cli import _assignment
from comfy_serverless_client.models import Progress
from comfy_serverless_client.progress_bar import ProgressBar


def test_set_values_are_json_when_they_parse_else_text() -> None:
    assert _assignment("seed=1") == ("seed", 1)
    assert _assignment("cfg=7.5") == ("cfg", 7.5)
    assert _assignment("prompt=a red lighthouse") == ("prompt", "a red lighthouse")
    assert _assignment("3.text=x=y") == ("3.text", "x=y")


def test_the_bar_shows_node_step_nodes_and_an_eta_from_the_rate_so_far() -> None:
    screen = io.StringIO()
    now = [100.0]
    bar = ProgressBar(screen, clock=lambda: now[0])
    step = {"execution_id": "e", "current_node": "KSampler", "current_node_id": "3",
            "total_steps": 20, "completed_nodes": 3, "total_nodes": 7}
    bar.update(Progress(progress=0.2, current_step=2, **step))
    now[0] = 104.0
    bar.update(Progress(progress=0.6, current_step=12, **step))
    line = screen.getvalue().split("\r")[-1]
    assert line.startswith("[##############----------]  60% | KSampler (node 3) | step 12/20")
    assert line.rstrip().endswith("nodes 3/7 | ETA 4s")  # 0.4 left at 0.1 per second
    bar.complete("e completed")
    assert "100%" in screen.getvalue().split("\r")[-1]
    assert screen.getvalue().endswith("e completed\n")
