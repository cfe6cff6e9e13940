"""Writes one running execution's progress to the store, throttled.

ComfyUI sends a step event per sampler step and a preview per step; the store and the
webhook receivers must not see each. So one writer per attempt keeps the pace:
- progress and the new log lines, at most once per progress_write_interval;
- with include_intermediate, the newest sampler preview kept as an intermediate output, at
  most once per progress_event_interval;
- with include_progress, an `execution.progress` webhook at most once per
  progress_event_interval, plus one whenever a node completes; it carries the newest kept
  preview that no webhook has carried yet.
All of it goes to the store in one write, under the claim's lease.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from comfy_serverless.engine.comfyui.messages import PreviewImage
from comfy_serverless.errors import StorageError
from comfy_serverless.store.records import ExecutionRecord, OutputRecord, ProgressSnapshot
from comfy_serverless.store.store import Store
from comfy_serverless.worker.outputs import OutputCollector
from comfy_serverless.worker.tracked_prompt import TrackedPrompt

__all__ = ["ProgressPace", "ProgressWriter"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProgressPace:
    """How often progress is written, and how often previews and webhooks go out."""

    write_interval: float
    event_interval: float


@dataclass
class _PreviewPace:
    latest: PreviewImage | None = None
    stored: PreviewImage | None = None
    last_stored_at: float = 0.0
    count: int = 0
    unsent_key: str | None = None


class ProgressWriter:
    def __init__(self, store: Store, collector: OutputCollector, pace: ProgressPace,
                 execution: ExecutionRecord, tracker: TrackedPrompt, now: float) -> None:
        self._store = store
        self._collector = collector
        self._pace = pace
        self._execution = execution
        self._tracker = tracker
        self._last_write = now
        self._last_event = 0.0
        self._nodes_sent = 0
        self._previews = _PreviewPace()
        notify = execution.options.notify
        self._wants_previews = notify.include_intermediate
        self._wants_events = notify.include_progress and execution.webhook_url is not None

    def see_preview(self, preview: PreviewImage) -> None:
        """A sampler preview arrived; only the newest is ever kept."""
        self._previews.latest = preview

    def due(self, now: float) -> bool:
        return now - self._last_write >= self._pace.write_interval

    async def write(self, now: float, engine_metrics: dict[str, float | None] | None) -> bool:
        """Progress, log, and (when asked for) a preview and a progress webhook, together.
        False when the store says the execution is no longer ours."""
        self._last_write = now
        snapshot = self._tracker.snapshot()
        previews = await self._previews_due(now)
        if previews:
            self._previews.unsent_key = previews[0].storage_key
        webhook = self._progress_event(snapshot, now)
        if webhook is not None and self._previews.unsent_key is not None:
            webhook["preview"], self._previews.unsent_key = self._previews.unsent_key, None
        return await self._store.claims.record_progress(
            self._execution.lease, snapshot, self._tracker.drain_log(), webhook=webhook,
            outputs=previews, engine_metrics=engine_metrics)

    async def _previews_due(self, now: float) -> list[OutputRecord]:
        """With include_intermediate, the newest sampler preview, kept at most once per
        progress_event_interval as an intermediate output."""
        pace, preview = self._previews, self._previews.latest
        if (not self._wants_previews or preview is None or preview is pace.stored
                or now - pace.last_stored_at < self._pace.event_interval):
            return []
        pace.stored, pace.last_stored_at = preview, now
        pace.count += 1
        try:
            return [await self._collector.store_preview(
                self._execution, preview.node_id, preview.content_type, preview.image,
                pace.count)]
        except (StorageError, OSError) as exc:  # a preview is a courtesy: skip it, go on
            log.warning("preview of %s not stored: %s", self._execution.id, exc)
            return []

    def _progress_event(self, snapshot: ProgressSnapshot, now: float) -> dict[str, Any] | None:
        """An `execution.progress` webhook, when asked for: at most one per
        progress_event_interval, plus one whenever a node completes."""
        if not self._wants_events:
            return None
        node_done = snapshot.completed_nodes > self._nodes_sent
        recent = now - self._last_event < self._pace.event_interval
        if recent and not node_done:
            return None
        self._last_event, self._nodes_sent = now, snapshot.completed_nodes
        return {"progress": snapshot.progress, "current_node": snapshot.current_node,
                "current_step": snapshot.current_step, "total_steps": snapshot.total_steps,
                "completed_nodes": snapshot.completed_nodes,
                "total_nodes": self._tracker.total_nodes}
