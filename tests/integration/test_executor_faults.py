"""The worker against a fake ComfyUI that misbehaves on purpose: lost events, node errors,
out of memory, refusals. Real SQLite store and local storage; the worker runs in burst mode."""

from __future__ import annotations

import asyncio
import functools
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from comfy_serverless.auth.keys import issue_key
from comfy_serverless.engine.comfyui.messages import EngineEvent
from comfy_serverless.engine.comfyui.supervisor import AttachedEngine
from comfy_serverless.errors import EngineUnavailable, StorageError
from comfy_serverless.executions.submission import new_execution_id
from comfy_serverless.queue.rescuer import Rescuer
from comfy_serverless.storage.base import StoredLocation
from comfy_serverless.storage.local import LocalStorage
from comfy_serverless.storage.signing import UrlSigner
from comfy_serverless.store.options import (
    ExecutionOptions,
    NotifyOptions,
    RunOptions,
    StagedInputOptions,
)
from comfy_serverless.store.records import ExecutionRecord, NewExecution
from comfy_serverless.store.store import Store
from comfy_serverless.testing import free_port
from comfy_serverless.worker.prompt_submission import PromptSubmission
from comfy_serverless.worker.tracked_prompt import TrackedPrompt
from comfy_serverless.worker.worker import Worker
from comfy_serverless.worker.worker_config import WorkerConfig
from tests.fakes.comfyui import FakeComfyUI, running_fake
from tests.helpers import wait_for
from workloads.workflows import tiny_sd15


class RestartableFake(AttachedEngine):
    """An attached engine whose 'restart' is the fake's: what a supervised child would do."""

    def __init__(self, base_url: str, fake: FakeComfyUI) -> None:
        super().__init__(base_url)
        self.fake = fake
        self.restarts = 0

    async def restart(self) -> bool:
        self.restarts += 1
        self.fake.restart()
        return True


class FlakyStorage(LocalStorage):
    """Local storage whose writes can be made to fail, like a full disk or an S3 outage."""

    def __init__(self, root: Path, signer: UrlSigner) -> None:
        super().__init__(root, signer)
        self.fail_puts = False
        self.fail_keys_with: str | None = None
        # When set, a put waits for it: an upload that lasts as long as the test wants.
        self.hold_puts: asyncio.Event | None = None
        self.put_started = asyncio.Event()

    async def put_file(self, location: StoredLocation, source: Path, content_type: str
                       ) -> StoredLocation:
        self.put_started.set()
        if self.hold_puts is not None:
            await asyncio.wait_for(self.hold_puts.wait(), 30)
        if self.fail_puts or (self.fail_keys_with and self.fail_keys_with in location.key):
            raise StorageError("injected: the bucket is unreachable")
        return await super().put_file(location, source, content_type)


@dataclass
class Rig:
    store: Store
    worker: Worker
    fake: FakeComfyUI
    key_id: str
    engine: RestartableFake
    storage: FlakyStorage

    async def submit(self, *, retries: int = 0, priority: int = 5,
                     options: ExecutionOptions | None = None) -> str:
        graph = tiny_sd15(1)
        execution = NewExecution(
            id=new_execution_id(), api_key_id=self.key_id, priority=priority, workflow=graph,
            options=options or ExecutionOptions(), signature="s", webhook_url=None,
            client_id=None,
            submitted_at=time.time(), max_attempts=1 + retries, total_nodes=len(graph))
        await self.store.executions.create_execution(execution)
        return execution.id

    async def execution(self, execution_id: str) -> ExecutionRecord:
        record = await self.store.executions.execution(execution_id)
        assert record is not None
        return record


@pytest.fixture
async def rig(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Rig]:
    """A worker over the fake ComfyUI; `indirect` parametrization overrides WorkerConfig."""
    overrides: dict[str, Any] = getattr(request, "param", {})
    port = free_port()
    (tmp_path / "engine-out").mkdir()
    store = await Store.open(f"sqlite:///{tmp_path / 'db.sqlite'}")
    await store.migrate()
    key = issue_key("secret", "basic")
    await store.access.create_api_key(key.record)
    async with running_fake(tmp_path / "engine-out", port) as fake:
        config = WorkerConfig(worker_id="w-test", spool_dir=tmp_path / "spool",
                              cancel_poll_interval=0.05, progress_write_interval=0.05,
                              silence_check_interval=0.5, shutdown_grace=0.3,
                              poll_interval=0.05, watchdog_timeout=1.0, **overrides)
        storage = FlakyStorage(tmp_path / "storage", UrlSigner("s"))
        engine = RestartableFake(f"http://127.0.0.1:{port}", fake)
        worker = Worker(config, store, engine, storage)
        await worker.prepare()
        yield Rig(store, worker, fake, key.record.id, engine, storage)
        await worker.stop()
    await store.close()


async def test_a_normal_run_streams_the_output_over_http(rig: Rig) -> None:
    execution_id = await rig.submit()
    assert await rig.worker.run_burst() == ["completed"]
    [output] = await rig.store.executions.outputs(execution_id)
    assert (output.width, output.height, output.format) == (8, 8, "PNG")
    record = await rig.execution(execution_id)
    assert (record.progress, record.current_step, record.total_steps) == (1.0, 3, 3)


async def test_lost_events_are_recovered_from_history(rig: Rig) -> None:
    rig.fake.faults.silent = True
    execution_id = await rig.submit()
    assert await rig.worker.run_burst() == ["completed"]
    assert len(await rig.store.executions.outputs(execution_id)) == 1


async def test_outputs_carried_by_an_unbroken_event_stream_spare_the_history(rig: Rig) -> None:
    execution_id = await rig.submit()
    assert await rig.worker.run_burst() == ["completed"]
    assert len(await rig.store.executions.outputs(execution_id)) == 1
    assert rig.fake.history_reads == 0


async def test_after_a_reconnect_mid_prompt_the_outputs_come_from_the_history(rig: Rig) -> None:
    rig.fake.faults.drop_socket_at = "9"  # SaveImage: its `executed` goes to no socket
    execution_id = await rig.submit()
    assert await rig.worker.run_burst() == ["completed"]
    [output] = await rig.store.executions.outputs(execution_id)
    assert output.format == "PNG"
    assert rig.fake.history_reads >= 1


async def test_a_node_error_fails_with_the_node_and_no_retry(rig: Rig) -> None:
    rig.fake.faults.fail_node = "3"
    execution_id = await rig.submit(retries=2)
    assert await rig.worker.run_burst() == ["failed"]
    record = await rig.execution(execution_id)
    assert record.error is not None
    details = record.error["details"]
    assert (details["failed_node"], details["node_type"], details["error_type"]) == (
        "3", "KSampler", "NODE_EXECUTION_ERROR")
    assert record.error["retry_info"]["retryable"] is False


async def test_out_of_memory_is_retried_then_fails_with_retries_spent(rig: Rig) -> None:
    rig.fake.faults.fail_node = "3"
    rig.fake.faults.error_message = "CUDA out of memory. Tried to allocate 2.00 GiB"
    execution_id = await rig.submit(retries=1)
    assert await rig.worker.run_once() == "requeued"
    queued = await rig.execution(execution_id)
    assert queued.status == "queued"
    assert queued.error is not None
    assert queued.error["retry_info"]["remaining_retries"] == 0
    assert await rig.worker.run_once() is None, "not before its backoff"


async def test_an_engine_refusing_prompts_is_a_retryable_engine_failure(rig: Rig) -> None:
    rig.fake.faults.prompt_status = 500
    execution_id = await rig.submit()
    assert await rig.worker.run_burst() == ["failed"]
    record = await rig.execution(execution_id)
    assert record.error is not None
    assert record.error["details"]["error_type"] == "ENGINE_CRASHED"
    assert record.error["retry_info"]["retryable"] is True


async def test_outputs_that_cannot_be_stored_fail_the_execution_promptly(rig: Rig) -> None:
    rig.storage.fail_puts = True
    execution_id = await rig.submit(retries=1)
    assert await rig.worker.run_once() == "requeued", "a storage outage is worth a retry"
    queued = await rig.execution(execution_id)
    assert queued.error is not None
    assert queued.error["details"]["error_type"] == "OUTPUT_STORAGE_FAILED"
    assert queued.error["retry_info"]["retryable"] is True
    assert "bucket is unreachable" in queued.error["message"]

    failed_id = await rig.submit()
    assert await rig.worker.run_once() == "failed"
    failed = await rig.execution(failed_id)
    assert (failed.status, failed.lease_owner) == ("failed", None)
    assert failed.error is not None
    assert failed.error["details"]["error_type"] == "OUTPUT_STORAGE_FAILED"


async def test_outputs_comfyui_will_not_hand_over_are_a_retryable_engine_failure(
    rig: Rig,
) -> None:
    rig.fake.faults.view_status = 500
    execution_id = await rig.submit()
    assert await rig.worker.run_once() == "failed"
    record = await rig.execution(execution_id)
    assert record.error is not None
    assert record.error["details"]["error_type"] == "ENGINE_CRASHED"
    assert record.error["retry_info"]["retryable"] is True
    assert "outputs could not be read" in record.error["message"]


@pytest.mark.parametrize("rig", [{"lease_seconds": 1.0, "heartbeat_interval": 0.2}],
                         indirect=True)
async def test_the_lease_is_kept_while_slow_outputs_are_stored(rig: Rig) -> None:
    rig.storage.hold_puts = asyncio.Event()
    execution_id = await rig.submit()
    rescuer = Rescuer(rig.store, interval=0.1)
    rescuer.start()
    run = asyncio.create_task(rig.worker.run_once())
    try:
        await asyncio.wait_for(rig.storage.put_started.wait(), 20)
        uploading = await rig.execution(execution_id)
        assert uploading.lease_expires_at is not None
        held_until = uploading.lease_expires_at

        async def leases_outlived() -> bool:
            # Two leases' worth past the one held when the upload began, the rescuer
            # running all along: kept only because the executor renewed it.
            now = time.time()
            current = await rig.execution(execution_id)
            return (now > held_until + 1.0 and current.status == "processing"
                    and current.lease_expires_at is not None
                    and current.lease_expires_at > now)

        await wait_for(leases_outlived, timeout=20, interval=0.05, what="the upload to outlast")
        rig.storage.hold_puts.set()
        assert await run == "completed"
    finally:
        await rescuer.stop()
    record = await rig.execution(execution_id)
    assert (record.status, record.attempt) == ("completed", 1), "never taken back mid-upload"


async def test_a_preview_that_cannot_be_stored_is_skipped_not_fatal(rig: Rig) -> None:
    rig.fake.faults.steps, rig.fake.faults.step_seconds = 6, 0.05
    rig.fake.faults.previews = True
    rig.storage.fail_keys_with = "/intermediate/"
    execution_id = await rig.submit(options=ExecutionOptions(
        notify=NotifyOptions(include_intermediate=True)))
    assert await rig.worker.run_once() == "completed"
    outputs = await rig.store.executions.outputs(execution_id)
    assert [output.output_type for output in outputs] == ["IMAGE"]


async def test_a_staged_input_missing_from_local_storage_is_input_unavailable(
    rig: Rig,
) -> None:
    staged = StagedInputOptions("1", "image", "gone.png", "local", None,
                                "outputs/nowhere/inputs/gone.png")
    execution_id = await rig.submit(retries=2,
                                    options=ExecutionOptions(staged_inputs=(staged,)))
    assert await rig.worker.run_once() == "failed"
    record = await rig.execution(execution_id)
    assert record.error is not None
    assert record.error["details"]["error_type"] == "INPUT_UNAVAILABLE"
    assert "gone.png" in record.error["message"]


async def test_a_running_execution_cancelled_deletes_its_staged_inputs(rig: Rig) -> None:
    rig.fake.faults.steps, rig.fake.faults.step_seconds = 200, 0.05
    key = "outputs/staged/inputs/cat.png"
    stored = rig.storage.root / key
    stored.parent.mkdir(parents=True)
    stored.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    staged = StagedInputOptions("1", "image", "cat.png", "local", None, key)
    execution_id = await rig.submit(options=ExecutionOptions(staged_inputs=(staged,)))
    run = asyncio.create_task(rig.worker.run_once())

    async def running() -> bool:
        return (await rig.execution(execution_id)).status == "processing"

    await wait_for(running, timeout=10, what="the job to start")
    assert await rig.store.executions.cancel(execution_id, rig.key_id, "user_requested",
                                             time.time())
    assert await run == "cancelled"
    assert list(rig.fake.uploads) == ["comfy-serverless/cat.png"], "uploaded before the prompt"
    assert not stored.exists(), "no attempt will need it again"


async def test_shutdown_hands_a_long_job_back_unharmed(rig: Rig) -> None:
    rig.fake.faults.steps, rig.fake.faults.step_seconds = 200, 0.05
    execution_id = await rig.submit()
    await rig.worker.start()

    async def running() -> bool:
        return (await rig.execution(execution_id)).status == "processing"

    await wait_for(running, timeout=10, what="the job to start")
    await rig.worker.stop()
    record = await rig.execution(execution_id)
    assert (record.status, record.attempt, record.lease_owner) == ("queued", 0, None)
    assert rig.fake.interrupted, "ComfyUI was told to stop the prompt"
    events = [entry.event for entry in await rig.store.executions.events(execution_id)]
    assert "execution_handed_back" in events


async def test_shutdown_lets_a_short_job_finish(rig: Rig) -> None:
    rig.fake.faults.steps, rig.fake.faults.step_seconds = 2, 0.05
    execution_id = await rig.submit()
    await rig.worker.start()

    async def running() -> bool:
        return (await rig.execution(execution_id)).status != "queued"

    await wait_for(running, timeout=10, what="the job to start")
    await rig.worker.stop()
    assert (await rig.execution(execution_id)).status == "completed"


async def test_the_watchdog_restarts_a_stuck_comfyui_and_the_job_completes(rig: Rig) -> None:
    rig.fake.hang()
    execution_id = await rig.submit(retries=1)
    rig.worker.warm.prompt_for({"1": {"class_type": "CheckpointLoaderSimple",
                                      "inputs": {"ckpt_name": "warm.safetensors"}}})
    assert rig.worker.warm.current() == {"warm.safetensors"}
    assert await rig.worker.run_once() == "requeued"
    # The executor's watchdog restarted ComfyUI: the worker's next heartbeat catches up.
    await rig.worker._heartbeat_step(time.monotonic())
    assert rig.worker.warm.current() == frozenset(), "a restarted ComfyUI holds no model"
    stuck = await rig.execution(execution_id)
    assert stuck.error is not None
    assert stuck.error["details"]["error_type"] == "ENGINE_HUNG"
    assert rig.fake.pending == [], "the restart emptied ComfyUI's queue"
    assert rig.engine.restarts == 1

    async def retried() -> str | None:
        return await rig.worker.run_once()

    assert await wait_for(retried, timeout=10, interval=0.1, what="the retry") == "completed"
    assert (await rig.execution(execution_id)).attempt == 2


async def test_a_restart_is_caught_up_with_only_once_the_new_comfyui_answers(
        rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    """A catch-up that cannot read the new ComfyUI's hooks yet is not marked done: the next
    heartbeat or claim tries again, and meanwhile no job is claimed and left leased."""
    client = rig.worker._client
    assert client is not None
    rig.worker.warm.prompt_for({"1": {"class_type": "CheckpointLoaderSimple",
                                      "inputs": {"ckpt_name": "warm.safetensors"}}})
    rig.engine.restarts += 1  # restarted by someone else: the executor's watchdog, say
    hooks = client.hooks

    async def not_yet() -> dict[str, Any] | None:
        raise EngineUnavailable("ComfyUI is still starting")

    monkeypatch.setattr(client, "hooks", not_yet)
    execution_id = await rig.submit()
    with pytest.raises(EngineUnavailable):
        await rig.worker.run_once()
    assert (await rig.execution(execution_id)).status == "queued", "nothing was claimed"
    assert "warm.safetensors" in rig.worker.warm.current(), "not caught up with yet"
    monkeypatch.setattr(client, "hooks", hooks)
    assert await rig.worker.run_once() == "completed"
    assert "warm.safetensors" not in rig.worker.warm.current(), "the restart was caught up"


async def test_a_timeout_interrupts_comfyui_and_fails_the_job(rig: Rig) -> None:
    rig.fake.faults.steps, rig.fake.faults.step_seconds = 400, 0.01
    graph = tiny_sd15(1)
    execution = NewExecution(
        id=new_execution_id(), api_key_id=rig.key_id, priority=5, workflow=graph,
        options=ExecutionOptions(run=RunOptions(timeout=1)), signature="s", webhook_url=None,
        client_id=None, submitted_at=time.time(), max_attempts=3, total_nodes=len(graph))
    await rig.store.executions.create_execution(execution)
    assert await rig.worker.run_once() == "failed"
    record = await rig.execution(execution.id)
    assert record.error is not None
    assert record.error["details"]["error_type"] == "TIMEOUT"
    assert record.error["retry_info"]["retryable"] is False
    assert rig.fake.interrupted


async def test_a_prefetched_job_yields_to_a_more_urgent_one(rig: Rig) -> None:
    rig.fake.faults.steps, rig.fake.faults.step_seconds = 60, 0.02
    first = await rig.submit(priority=5)
    await rig.worker.start()

    async def status(execution_id: str, wanted: str) -> bool:
        return (await rig.execution(execution_id)).status == wanted

    await wait_for(lambda: status(first, "processing"), timeout=10, what="the first job")
    patient = await rig.submit(priority=1)
    await wait_for(lambda: _pending(rig.fake, 1), timeout=10, what="the prefetch")
    urgent = await rig.submit(priority=9)
    for execution_id in (first, urgent, patient):
        await wait_for(functools.partial(status, execution_id, "completed"), timeout=30,
                       what=f"{execution_id} to complete")
    finished = {e: (await rig.execution(e)).finished_at for e in (first, urgent, patient)}
    assert sorted(finished, key=lambda e: finished[e] or 0) == [first, urgent, patient]
    events = [entry.event for entry in await rig.store.executions.events(patient)]
    assert "execution_handed_back" in events


async def test_a_worker_claims_no_more_than_one_job_plus_its_prefetch(rig: Rig) -> None:
    """Jobs already queued when the worker starts: it claims one, and one more (prefetch 1)
    once ComfyUI holds the first, not the whole queue in one burst (a claim that does not
    suspend once let the loop claim again before the claimed job counted as running)."""
    rig.fake.faults.steps, rig.fake.faults.step_seconds = 60, 0.02
    queued = [await rig.submit() for _ in range(4)]
    await rig.worker.start()

    async def two_claimed() -> list[str] | None:
        statuses: list[str] = [(await rig.execution(e)).status for e in queued]
        return statuses if statuses.count("queued") <= 2 else None

    statuses = await wait_for(two_claimed, timeout=10, what="two claims")
    assert sorted(statuses) == ["processing", "processing", "queued", "queued"]


async def _pending(fake: FakeComfyUI, count: int) -> bool:
    return len(fake.pending) == count


async def test_a_worker_whose_models_change_announces_model_updated(rig: Rig) -> None:
    info = json.loads((Path(__file__).resolve().parents[1] / "fixtures" / "object_info.json")
                      .read_text())
    ckpt = info["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"]
    ckpt[0] = ["old.safetensors"]
    rig.fake.object_info = info
    await rig.worker.publish_catalog()
    await rig.store.webhooks.register(rig.key_id, "https://93.184.215.14/ops", None,
                                      ["model.updated"], 10)
    ckpt[0] = ["old.safetensors", "new.safetensors"]
    await rig.worker.publish_catalog()
    [event] = await rig.store.webhooks.claim("check", 1, 10)
    assert event.event_type == "model.updated"
    assert event.payload is not None
    assert json.loads(event.payload) == {"worker_id": "w-test", "added": ["new.safetensors"],
                                         "removed": []}


async def test_a_gpu_memory_share_claimed_by_a_cpu_worker_fails_unsubmitted(rig: Rig) -> None:
    """Queued while no worker was live; the worker that claims it has no GPU: it fails as
    FEATURE_UNAVAILABLE, not retried, and ComfyUI never sees it."""
    execution_id = await rig.submit(retries=2, options=ExecutionOptions(
        run=RunOptions(gpu_memory_fraction=0.5)))
    assert await rig.worker.run_burst() == ["failed"]
    record = await rig.execution(execution_id)
    assert record.error is not None
    assert record.error["details"]["error_type"] == "FEATURE_UNAVAILABLE"
    assert record.error["details"]["field"] == "execution_config.gpu_memory_fraction"
    assert record.attempt == 1
    assert rig.fake.arrivals == {}


async def test_no_work_is_claimed_until_the_catalog_names_the_output_nodes(
    tmp_path: Path
) -> None:
    """/object_info fails when the worker prepares: it claims nothing (a repeated workflow
    would otherwise be answered from ComfyUI's cache), and reads the catalog again at the
    next claims until it answers; then every submission's output nodes carry the run mark."""
    port = free_port()
    (tmp_path / "engine-out").mkdir()
    store = await Store.open(f"sqlite:///{tmp_path / 'db.sqlite'}")
    await store.migrate()
    key = issue_key("secret", "basic")
    await store.access.create_api_key(key.record)
    async with running_fake(tmp_path / "engine-out", port) as fake:
        fake.faults.object_info_status = 500
        config = WorkerConfig(worker_id="w-test", spool_dir=tmp_path / "spool",
                              poll_interval=0.05, catalog_refresh_interval=3600)
        engine = RestartableFake(f"http://127.0.0.1:{port}", fake)
        storage = FlakyStorage(tmp_path / "storage", UrlSigner("s"))
        worker = Worker(config, store, engine, storage)
        await worker.prepare()
        rig = Rig(store, worker, fake, key.record.id, engine, storage)
        execution_id = await rig.submit()
        try:
            assert await worker.run_once() is None
            assert (await rig.execution(execution_id)).status == "queued"
            fake.faults.object_info_status = 200
            assert await wait_for(lambda: _claims(worker), timeout=10)
            [prompt] = fake.prompts.values()
            assert prompt["9"]["inputs"]["cs_run"]
        finally:
            await worker.stop()
    await store.close()


async def _claims(worker: Worker) -> bool | None:
    return True if await worker.run_once() == "completed" else None


async def test_each_prompt_leaves_comfyuis_history_once_its_attempt_ends(rig: Rig) -> None:
    await rig.submit()
    assert await rig.worker.run_burst() == ["completed"]
    assert rig.fake.history == {}
    rig.fake.faults.fail_node = "3"
    await rig.submit()
    assert await rig.worker.run_burst() == ["failed"]
    assert rig.fake.history == {}


@pytest.mark.parametrize("rig", [{"keep_engine_history": True}], indirect=True)
async def test_keep_engine_history_leaves_each_prompt_in_comfyuis_history(rig: Rig) -> None:
    await rig.submit()
    assert await rig.worker.run_burst() == ["completed"]
    [entry] = rig.fake.history.values()
    assert entry["status"]["status_str"] == "success"


async def test_a_defect_in_the_worker_puts_the_job_back_at_once(
        rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    """An unexpected exception in an attempt (a bug, not a known failure) is a retryable
    WORKER_ERROR recorded now: the job does not wait in `processing` for its lease to run
    out, and the worker goes on."""
    async def broken(self: object, context: object, output_classes: object) -> None:
        raise RuntimeError("a defect")

    monkeypatch.setattr(PromptSubmission, "submit", broken)
    execution_id = await rig.submit(retries=1)
    assert await rig.worker.run_once() == "requeued"
    queued = await rig.execution(execution_id)
    assert queued.status == "queued"
    assert queued.error is not None
    assert queued.error["details"]["error_type"] == "WORKER_ERROR"
    assert queued.error["retry_info"]["retryable"] is True


async def test_a_defect_while_the_prompt_runs_withdraws_it_from_comfyui(
        rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    """The prompt is interrupted before the job goes back: no orphan runs beside the next
    attempt."""
    rig.fake.faults.steps, rig.fake.faults.step_seconds = 200, 0.05
    apply = TrackedPrompt.apply

    def broken_once_running(self: TrackedPrompt, event: EngineEvent) -> None:
        apply(self, event)
        if self.started_at is not None:
            raise RuntimeError("a defect")

    monkeypatch.setattr(TrackedPrompt, "apply", broken_once_running)
    execution_id = await rig.submit(retries=1)
    assert await rig.worker.run_once() == "requeued"
    record = await rig.execution(execution_id)
    assert record.error is not None
    assert record.error["details"]["error_type"] == "WORKER_ERROR"
    assert rig.fake.interrupted == {record.engine_prompt_id}
