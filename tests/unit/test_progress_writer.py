"""The progress writer's pace: what reaches the store, and when."""

from __future__ import annotations

import dataclasses
from typing import Any, cast

from comfy_serverless.engine.comfyui.messages import (
    ExecutionStarted,
    NodeStarted,
    PreviewImage,
    StepProgress,
)
from comfy_serverless.store.options import ExecutionOptions, NotifyOptions
from comfy_serverless.store.records import ExecutionRecord, OutputRecord
from comfy_serverless.store.store import Store
from comfy_serverless.worker.outputs import OutputCollector
from comfy_serverless.worker.progress_writer import ProgressPace, ProgressWriter
from comfy_serverless.worker.tracked_prompt import TrackedPrompt
from tests.helpers import processing_execution
from workloads.workflows import tiny_sd15

PID = "p"
PACE = ProgressPace(write_interval=0.25, event_interval=1.0)


class RecordingClaims:
    def __init__(self) -> None:
        self.writes: list[dict[str, Any]] = []

    async def record_progress(self, lease: Any, snapshot: Any, log: Any, *,
                              webhook: dict[str, Any] | None, outputs: list[OutputRecord],
                              engine_metrics: Any) -> bool:
        self.writes.append({"snapshot": snapshot, "webhook": webhook, "outputs": outputs})
        return True


class RecordingStore:
    """The one sub-store the progress writer writes through."""

    def __init__(self) -> None:
        self.claims = RecordingClaims()
        self.writes = self.claims.writes


class PreviewKeeper:
    async def store_preview(self, execution: ExecutionRecord, node_id: str | None,
                            content_type: str, image: bytes, sequence: int) -> OutputRecord:
        return OutputRecord(
            id=f"o{sequence}", execution_id=execution.id, node_id=node_id or "", intermediate=True,
            output_type="PREVIEW", filename=f"preview_{sequence}.jpg", content_type=content_type,
            size_bytes=len(image), width=None, height=None, format="jpg",
            storage_provider="local", storage_bucket=None, storage_key=f"previews/{sequence}",
            created_at=0.0)


def _writer(notify: NotifyOptions) -> tuple[ProgressWriter, RecordingStore, TrackedPrompt]:
    options = ExecutionOptions(notify=notify)
    execution = dataclasses.replace(processing_execution("e1", options), workflow=tiny_sd15(1),
                                    webhook_url="https://example.invalid/hook")
    store, tracker = RecordingStore(), TrackedPrompt(tiny_sd15(1), lambda: 0.0)
    writer = ProgressWriter(cast(Store, store), cast(OutputCollector, PreviewKeeper()), PACE,
                            execution, tracker, now=0.0)
    return writer, store, tracker


async def test_progress_is_written_once_per_write_interval() -> None:
    writer, store, tracker = _writer(NotifyOptions())
    tracker.apply(ExecutionStarted(PID))
    assert not writer.due(0.1)
    assert writer.due(0.25)
    assert await writer.write(0.25, None)
    assert not writer.due(0.3)
    assert store.writes[0]["webhook"] is None, "no progress webhook unless asked for"


async def test_progress_webhooks_keep_their_pace_but_a_completed_node_goes_out_at_once() -> None:
    writer, store, tracker = _writer(NotifyOptions(include_progress=True))
    tracker.apply(ExecutionStarted(PID))
    tracker.apply(NodeStarted(PID, "3"))
    for step, now in enumerate((1.0, 1.25, 1.5), start=1):
        tracker.apply(StepProgress(PID, "3", step, 20))
        await writer.write(now, None)
    tracker.apply(NodeStarted(PID, "8"))
    await writer.write(1.75, None)
    sent = [write["webhook"] for write in store.writes]
    assert [hook is not None for hook in sent] == [True, False, False, True]
    assert (sent[0]["current_step"], sent[3]["completed_nodes"]) == (1, 1)


async def test_the_newest_preview_is_kept_at_its_pace_and_rides_the_next_webhook() -> None:
    writer, store, _ = _writer(NotifyOptions(include_progress=True,
                                           include_intermediate=True))
    writer.see_preview(PreviewImage(PID, "3", "image/jpeg", b"one"))
    writer.see_preview(PreviewImage(PID, "3", "image/jpeg", b"two"))
    await writer.write(1.0, None)
    await writer.write(1.5, None)
    writer.see_preview(PreviewImage(PID, "3", "image/jpeg", b"three"))
    await writer.write(1.75, None)
    await writer.write(2.0, None)
    kept = [[output.size_bytes for output in write["outputs"]] for write in store.writes]
    assert kept == [[3], [], [], [5]], "only the newest, and one per event_interval"
    assert store.writes[0]["webhook"]["preview"] == "previews/1"
    assert store.writes[3]["webhook"]["preview"] == "previews/2"
