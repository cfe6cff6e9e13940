"""The CLI's live progress bar: one line, redrawn in place, with the node, the sampler
step, the whole workflow's share and an ETA from the rate measured so far."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

from comfy_serverless_client.models import Progress

__all__ = ["ProgressBar"]

_WIDTH = 24


class ProgressBar:
    def __init__(self, stream: TextIO, clock: Callable[[], float] = time.monotonic) -> None:
        self._stream = stream
        self._clock = clock
        self._first: tuple[float, float] | None = None  # (time, progress) of the first update
        self._last_line = ""
        self._latest: Progress | None = None

    def status(self, text: str) -> None:
        self._draw(f"{text}")

    def update(self, progress: Progress) -> None:
        self._latest = progress
        now = self._clock()
        if self._first is None:
            self._first = (now, progress.progress)
        filled = round(progress.progress * _WIDTH)
        parts = [f"[{'#' * filled}{'-' * (_WIDTH - filled)}] {progress.progress:4.0%}"]
        if progress.current_node:
            parts.append(f"{progress.current_node} (node {progress.current_node_id})")
        if progress.current_step is not None and progress.total_steps:
            parts.append(f"step {progress.current_step}/{progress.total_steps}")
        parts.append(f"nodes {progress.completed_nodes}/{progress.total_nodes}")
        parts.append(f"ETA {self._eta(now, progress.progress)}")
        self._draw(" | ".join(parts))

    def complete(self, text: str) -> None:
        """The execution completed: the bar at 100%, then `text` on the same line."""
        if self._latest is not None:
            self.update(self._latest.model_copy(update={
                "progress": 1.0, "current_node": None, "current_step": None,
                "completed_nodes": self._latest.total_nodes}))
        self.finish(f"{self._last_line} | {text}")

    def finish(self, text: str) -> None:
        self._draw(text)
        self._stream.write("\n")
        self._stream.flush()

    def _eta(self, now: float, progress: float) -> str:
        assert self._first is not None
        started, at_start = self._first
        if progress >= 1:
            return "0s"
        if now <= started or progress <= at_start:
            return "--"
        remaining = (1 - progress) * (now - started) / (progress - at_start)
        return f"{remaining:.0f}s" if remaining < 120 else f"{remaining / 60:.0f}m"

    def _draw(self, line: str) -> None:
        padding = " " * max(0, len(self._last_line) - len(line))
        self._stream.write(f"\r{line}{padding}")
        self._stream.flush()
        self._last_line = line
