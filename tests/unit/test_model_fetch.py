"""The worker's side of model sources, without a network: what a failed fetch becomes, what
a download reports to the execution's log, and the wait for it (a stand-in cache, a store
that records)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import pytest

from comfy_serverless.engine.comfyui.client import Subscription
from comfy_serverless.errors import StorageError
from comfy_serverless.model_sources import (
    CachedModel,
    DownloadFailed,
    HashMismatch,
    ModelCache,
    ModelSource,
    ModelSourceError,
    Progress,
    SourcePolicy,
    SourceRefused,
)
from comfy_serverless.queue.outcome import Attempt, Fail, Retry, decide
from comfy_serverless.store.options import (
    ExecutionOptions,
    ModelSourceInput,
    ModelSourceOptions,
    NotifyOptions,
)
from comfy_serverless.store.records import LogEntry
from comfy_serverless.store.store import Store
from comfy_serverless.worker.execution_context import ExecutionContext, ExecutorConfig, StopRun
from comfy_serverless.worker.failures import submission_failure
from comfy_serverless.worker.model_fetch import DownloadReport, ModelFetcher, ModelFetchFailed
from comfy_serverless.worker.progress_writer import ProgressWriter
from comfy_serverless.worker.tracked_prompt import TrackedPrompt
from tests.helpers import processing_execution
from workloads.workflows import tiny_sd15

SOURCE = "https://127.0.0.1:8443/models/tiny.safetensors"


ITEM = ModelSourceInput("4", "ckpt_name", SOURCE, None, "checkpoints")


def _fetch_failed(cause: ModelSourceError) -> ModelFetchFailed:
    return ModelFetchFailed(ITEM, "CheckpointLoaderSimple", SOURCE, cause)


def test_a_network_failure_is_retried_and_a_wrong_hash_is_not() -> None:
    attempt = Attempt("exec_1", 1, 3)
    network = submission_failure(_fetch_failed(DownloadFailed(f"{SOURCE} was cut")))
    assert (network.error_type, network.retryable) == ("MODEL_UNAVAILABLE", True)
    assert isinstance(decide(network, attempt), Retry)
    for final in (HashMismatch(f"{SOURCE} has sha256 …"), SourceRefused("not allowed")):
        failure = submission_failure(_fetch_failed(final))
        decision = decide(failure, attempt)
        assert (failure.error_type, failure.retryable) == ("MODEL_UNAVAILABLE", False)
        assert isinstance(decision, Fail)
        details = decision.error["details"]
        assert (details["error_type"], details["failed_node"], details["node_type"]) == (
            "MODEL_UNAVAILABLE", "4", "CheckpointLoaderSimple")
        assert (details["input"], details["model_source"]) == ("ckpt_name", SOURCE)
        assert decision.error["retry_info"]["retryable"] is False
    staged = submission_failure(StorageError("gone"))
    assert (staged.error_type, staged.retryable) == ("INPUT_UNAVAILABLE", False)


def test_a_download_logs_its_bytes_at_the_start_at_most_every_few_seconds_and_at_the_end(
        ) -> None:
    report = DownloadReport(SOURCE, "4")
    assert report.entries(0.0, None) == []  # nothing arrived: nothing to say
    report.progress(100, 1000)
    first = report.entries(1.0, None)
    assert [(entry.event, entry.details) for entry in first] == [(
        "model_downloading", {"source": SOURCE, "bytes_done": 100, "bytes_total": 1000})]
    report.progress(500, 1000)
    assert report.entries(2.0, None) == []  # within _LOG_EVERY of the last entry
    report.progress(1000, 1000)
    model = CachedModel("ef" * 32, Path("/cache/blob"), 1000, "tiny.safetensors")
    last = report.entries(3.0, model)
    assert [entry.event for entry in last] == ["model_downloading", "model_downloaded"]
    assert last[0].details == {"source": SOURCE, "bytes_done": 1000, "bytes_total": 1000}
    assert last[1].details is not None
    assert last[1].details["sha256"] == "ef" * 32


def test_a_file_found_in_the_cache_reports_nothing() -> None:
    model = CachedModel("ef" * 32, Path("/cache/blob"), 1000, "tiny.safetensors")
    assert DownloadReport(SOURCE, "4").entries(0.0, model) == []


class SlowCache:
    """Stands in for ModelCache: a download in three steps, a pin held while in use."""

    def __init__(self) -> None:
        self.held = False
        self.stopped = False

    @contextlib.asynccontextmanager
    async def use(self, source: ModelSource, policy: SourcePolicy,
                  progress: Progress | None = None) -> AsyncIterator[CachedModel]:
        assert progress is not None
        try:
            for done in (1000, 2000, 3000):
                progress(done, 3000)
                await asyncio.sleep(0.05)  # the download's own pace: time for housekeeping
        except asyncio.CancelledError:
            self.stopped = True
            raise
        self.held = True
        try:
            yield CachedModel("ef" * 32, Path("/cache/blob"), 3000, source.basename)
        finally:
            self.held = False

    def place(self, model: CachedModel, folder: Path) -> str:
        return f"{model.sha256[:12]}-{model.basename}"


class RecordingClaims:
    def __init__(self, owned: bool = True) -> None:
        self.owned = owned
        self.writes: list[tuple[list[LogEntry], dict[str, Any] | None]] = []
        self.renewals = 0

    async def record_progress(self, lease: Any, snapshot: Any, log: list[LogEntry], *,
                              webhook: dict[str, Any] | None) -> bool:
        self.writes.append((list(log), webhook))
        return self.owned

    async def renew_lease(self, lease: Any, seconds: float) -> bool:
        self.renewals += 1
        return self.owned


class RecordingStore:
    def __init__(self, owned: bool = True) -> None:
        self.claims = RecordingClaims(owned)


def _fetching(store: RecordingStore) -> tuple[ModelFetcher, SlowCache, ExecutionContext]:
    options = ExecutionOptions(
        notify=NotifyOptions(include_progress=True),
        model_sources=ModelSourceOptions(("127.0.0.1",), (
            ModelSourceInput("4", "ckpt_name", SOURCE, None, "checkpoints"),)))
    workflow = tiny_sd15(1)
    workflow["4"]["inputs"]["ckpt_name"] = SOURCE
    execution = dataclasses.replace(processing_execution("e1", options), workflow=workflow,
                                    webhook_url="https://127.0.0.1/hook")
    config = ExecutorConfig(worker_id="w", lease_seconds=30, heartbeat_interval=0.01,
                            cancel_poll_interval=0.2, progress_write_interval=0.25,
                            progress_event_interval=0.02)
    cache = SlowCache()
    fetcher = ModelFetcher(lambda: cast(ModelCache, cache), Path("/models"),
                           lambda hosts: SourcePolicy(allowed_hosts=tuple(hosts)),
                           "https://127.0.0.1", cast(Store, store), config)
    context = ExecutionContext(
        execution=execution, prompt_id="p", tracker=TrackedPrompt(workflow),
        subscription=cast(Subscription, None), progress=cast(ProgressWriter, None),
        timeout=None, cancel_event=asyncio.Event())
    return fetcher, cache, context


async def test_the_worker_places_the_file_reports_the_download_and_holds_it_for_the_attempt(
        ) -> None:
    store = RecordingStore()
    fetcher, cache, context = _fetching(store)
    workflow = await fetcher.prepare(context)
    assert workflow["4"]["inputs"]["ckpt_name"] == f"{'ef' * 6}-tiny.safetensors"
    assert context.execution.workflow["4"]["inputs"]["ckpt_name"] == SOURCE
    assert cache.held, "the file stays pinned until the attempt ends"
    await context.held_models.aclose()
    assert not cache.held
    logged = [entry for entries, _ in store.claims.writes for entry in entries]
    events = [entry.event for entry in logged]
    assert events[0] == "model_downloading"
    assert events[-2:] == ["model_downloading", "model_downloaded"]
    assert len(events) <= 3, "within _LOG_EVERY, one entry at the start and one at the end"
    assert logged[-2].details == {"source": SOURCE, "bytes_done": 3000, "bytes_total": 3000}
    webhooks = [webhook for _, webhook in store.claims.writes if webhook is not None]
    assert webhooks
    assert webhooks[-1]["model_download"]["bytes_done"] == 3000
    assert store.claims.renewals >= 1, "a long download keeps the lease"


async def test_a_cancel_or_a_lost_lease_during_the_download_ends_the_attempt() -> None:
    fetcher, cache, context = _fetching(RecordingStore())
    context.cancel_event.set()
    with pytest.raises(StopRun) as stopped:
        await fetcher.prepare(context)
    assert stopped.value.outcome == "cancelled"
    fetcher, cache, context = _fetching(RecordingStore(owned=False))
    with pytest.raises(StopRun):
        await fetcher.prepare(context)
    assert cache.stopped, "the download was stopped before the attempt ended"
    assert not cache.held
