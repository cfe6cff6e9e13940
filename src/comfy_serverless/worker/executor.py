"""The executor runs one claimed execution on ComfyUI, from submit to recorded outcome.

    submit ──► follow events ──┬─► finished ──► collect outputs ──► completed
                               │                     └─ cannot store ─► queued again, or failed
                               ├─► execution_error ──────────────► failed (or retried)
                               ├─► cancel seen ──► interrupt ────► (cancelled by the API)
                               ├─► timeout ──► interrupt ────────► failed TIMEOUT
                               └─► engine lost ──────────────────► queued again, or failed

Every write goes through the store with the claim's Lease, so an execution that was
cancelled or rescued meanwhile is never overwritten.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from comfy_serverless.engine.comfyui.client import ComfyUIClient, Subscription
from comfy_serverless.engine.comfyui.device_usage import UsageWindow
from comfy_serverless.engine.comfyui.fresh_outputs import with_fresh_outputs, worker_additions
from comfy_serverless.engine.comfyui.messages import (
    ConnectionLost,
    EngineEvent,
    ExecutionError,
    ExecutionFinished,
    ExecutionInterrupted,
    ExecutionStarted,
    PreviewImage,
)
from comfy_serverless.engine.comfyui.supervisor import Engine
from comfy_serverless.engine.comfyui.tracker import ExecutionTracker
from comfy_serverless.engine.comfyui.tuning import EngineTuning
from comfy_serverless.errors import (
    EngineError,
    EnginePromptRejected,
    EngineUnavailable,
    StorageError,
    StoreError,
    StoreUnavailable,
)
from comfy_serverless.queue.retry import retry_delay
from comfy_serverless.store.records import (
    ClaimMatch,
    ExecutionRecord,
    Lease,
    LogEntry,
    OutputRecord,
    ProgressSnapshot,
)
from comfy_serverless.store.store import Store
from comfy_serverless.worker.engine_facts import EngineFacts
from comfy_serverless.worker.failures import Failure, engine_error_failure, rejection_failure
from comfy_serverless.worker.input_upload import InputUploader
from comfy_serverless.worker.outputs import OutputCollector
from comfy_serverless.worker.patience import already_written, when_store_answers
from comfy_serverless.worker.wakeups import Wakeups

__all__ = ["ExecutionContext", "Executor", "Outcome"]

log = logging.getLogger(__name__)


Outcome = Literal["completed", "failed", "requeued", "cancelled", "lost", "handed_back"]

_INTERRUPT_GRACE = 10.0
_RECONNECT_POLL_SECONDS = 0.1


@dataclass(frozen=True)
class ExecutorConfig:
    worker_id: str
    lease_seconds: float
    heartbeat_interval: float
    cancel_poll_interval: float
    progress_write_interval: float
    # After this long without an event for its prompt, the executor asks ComfyUI directly
    # (/history, /queue) in case an event was lost.
    silence_check_interval: float = 5.0
    # A prompt still pending this long after submission, while ComfyUI runs nothing, means
    # its prompt worker has stopped: the watchdog restarts ComfyUI and retries the job.
    watchdog_timeout: float = 60.0
    progress_event_interval: float = 1.0
    reconnect_timeout: float = 10.0


class _Stop(Exception):
    """Leaves the event loop with an outcome already decided."""

    def __init__(self, outcome: Outcome) -> None:
        self.outcome = outcome


@dataclass
class ExecutionContext:
    execution: ExecutionRecord
    prompt_id: str
    tracker: ExecutionTracker
    subscription: Subscription
    timeout: float | None
    deadline: float | None
    cancel_event: asyncio.Event
    tuning: EngineTuning = field(default_factory=EngineTuning)
    usage: UsageWindow = field(default_factory=UsageWindow)
    last_progress_write: float = 0.0
    last_lease_renewal: float = 0.0
    last_cancel_poll: float = 0.0
    last_event_at: float = 0.0
    submitted_at: float = 0.0
    prefetched: bool = False
    last_progress_event: float = 0.0
    progress_nodes_sent: int = 0
    latest_preview: PreviewImage | None = None
    stored_preview: PreviewImage | None = None
    last_preview_stored: float = 0.0
    previews_stored: int = 0
    unsent_preview_key: str | None = None

    @property
    def lease(self) -> Lease:
        return self.execution.lease


class Executor:
    def __init__(
        self,
        config: ExecutorConfig,
        store: Store,
        engine: Engine,
        client: ComfyUIClient,
        collector: OutputCollector,
        wakeups: Wakeups,
        resource_allocation: dict[str, Any],
        inputs: InputUploader | None = None,
    ) -> None:
        self._config = config
        self._store = store
        self._engine = engine
        self._client = client
        self._collector = collector
        self._inputs = inputs
        self._wakeups = wakeups
        self.resource_allocation = resource_allocation
        self._hand_back = asyncio.Event()
        # What is submitted for a workflow (the worker adds its pinned model loaders).
        self.prompt_for: Callable[[dict[str, Any]], dict[str, Any]] = dict
        # Which queued work this worker may take (its GPU type), for yielding to urgent work.
        self.claim_match: Callable[[], ClaimMatch] = ClaimMatch
        # The node classes ComfyUI runs as outputs (from its catalog): each submission runs
        # them again, never answering from a cached run whose files were moved out.
        self.output_classes: frozenset[str] = frozenset()
        # Its ComfyUI's device and hooks: what execution_config can apply, GPU usage samples.
        self.engine_facts = EngineFacts()

    def request_hand_back(self) -> None:
        """Graceful shutdown: interrupt the running job and return it to the queue unharmed."""
        self._hand_back.set()

    async def run(self, execution: ExecutionRecord, *, submitted: asyncio.Event | None = None,
                  prefetched: bool = False) -> Outcome:
        """Run one claimed execution to its outcome. `submitted` is set once ComfyUI holds the
        prompt; a `prefetched` run was queued behind another job and yields its place to a
        more urgent execution until it starts."""
        with self._wakeups.watch_cancel(execution.id) as cancel_event:
            context = self._context_for(execution, cancel_event)
            context.prefetched = prefetched
            try:
                await self._submit(context)
                if submitted is not None:
                    submitted.set()
                outcome = await self._follow(context)
            except _Stop as stop:
                outcome = stop.outcome
            finally:
                self._client.unsubscribe(context.prompt_id)
                if submitted is not None:
                    submitted.set()
                await self._leave_engine_folders(context)
        if outcome in ("completed", "failed"):
            self._wakeups.finished(execution.id)
        if self._inputs is not None and await self._ended_for_good(execution, outcome):
            await self._inputs.discard(execution)
        return outcome

    async def _leave_engine_folders(self, context: ExecutionContext) -> None:
        """Nothing of the attempt stays in ComfyUI's folders: the files its nodes wrote,
        reported or not (a local collection moved the reported ones out already), and its
        uploaded input images. The one place that empties them."""
        await self._collector.engine_files.remove_written(context.prompt_id)
        if self._inputs is not None:
            await self._inputs.remove_from_engine(context.execution)

    async def _ended_for_good(self, execution: ExecutionRecord, outcome: Outcome) -> bool:
        """Whether no attempt will ever need the execution's staged inputs again: it
        completed or failed here, or it was cancelled (not merely taken back by the rescuer,
        which may run it again)."""
        if outcome in ("completed", "failed"):
            return True
        if outcome != "cancelled":
            return False
        current = await self._store.execution(execution.id)
        return current is not None and current.status == "cancelled"

    def claim_allocation(self, prompt_id: str) -> dict[str, Any]:
        """What a claim records for the prompt this executor will submit."""
        return {**self.resource_allocation, "engine_prompt_id": prompt_id}

    def _context_for(self, execution: ExecutionRecord, cancel_event: asyncio.Event
                     ) -> ExecutionContext:
        prompt_id = execution.engine_prompt_id or str(uuid.uuid4())
        timeout = execution.options.get("execution_config", {}).get("timeout")
        now = time.time()
        return ExecutionContext(
            execution=execution,
            prompt_id=prompt_id,
            tracker=ExecutionTracker(execution.workflow),
            subscription=self._client.subscribe(prompt_id),
            timeout=float(timeout) if timeout else None,
            deadline=None,
            cancel_event=cancel_event,
            tuning=EngineTuning.from_config(execution.options.get("execution_config") or {}),
            last_progress_write=now,
            last_lease_renewal=now,
            last_cancel_poll=now,
            last_event_at=now,
        )

    async def _follow(self, context: ExecutionContext) -> Outcome:
        while True:
            event = await context.subscription.next(self._config.cancel_poll_interval)
            if event is not None and (outcome := await self._on_event(context, event)):
                return outcome
            try:
                await self._housekeeping(context)
            except StoreUnavailable as exc:
                # A store that restarts must not cost the job: its progress, lease and
                # cancel checks are tried again on the next round, within the lease.
                log.warning("housekeeping of %s skipped: %s", context.lease.execution_id, exc)

    async def _on_event(self, context: ExecutionContext, event: EngineEvent) -> Outcome | None:
        context.last_event_at = time.time()
        if isinstance(event, PreviewImage):
            context.latest_preview = event
            return None
        context.tracker.apply(event)
        if isinstance(event, ExecutionStarted) and context.timeout:
            context.deadline = context.last_event_at + context.timeout
        return await self._handle(context, event)

    async def _submit(self, context: ExecutionContext) -> None:
        if context.execution.engine_prompt_id is None and not await self._patiently(
                context, "processing", lambda: self._store.set_engine_prompt(
                    context.lease, context.prompt_id, self.claim_allocation(context.prompt_id))):
            raise _Stop("lost")
        if (refusal := self.engine_facts.refusal(context.tuning)) is not None:
            raise _Stop(await self._fail(context, refusal))
        try:
            # Events sent before our WebSocket is up would be lost: never submit without it.
            await self._client.wait_connected()
            if self._inputs is not None:
                await self._inputs.upload(context.execution)
            workflow = context.execution.workflow
            prompt = with_fresh_outputs(self.prompt_for(workflow), self.output_classes,
                                        context.prompt_id, context.tuning.cache_mark)
            await self._client.submit(prompt, context.prompt_id, extra_data={
                **context.tuning.extra_data(), **worker_additions(prompt, workflow)})
            context.submitted_at = time.time()
        except StorageError as exc:
            raise _Stop(await self._fail(context, Failure(
                error_type="INPUT_UNAVAILABLE", retryable=False,
                message=f"A staged input image could not be read: {exc}"))) from exc
        except EnginePromptRejected as exc:
            raise _Stop(await self._fail(context, rejection_failure(exc))) from exc
        except EngineUnavailable as exc:
            raise _Stop(await self._engine_lost(context, str(exc))) from exc

    async def _handle(self, context: ExecutionContext, event: EngineEvent) -> Outcome | None:
        match event:
            case ExecutionFinished():
                return await self._finish(context)
            case ExecutionError():
                return await self._fail(context, engine_error_failure(event))
            case ExecutionInterrupted():
                return await self._after_interrupt(context)
            case ConnectionLost(reason=reason):
                return await self._reconcile(context, reason)
        return None

    # ------------------------------------------------------------------ periodic work

    async def _housekeeping(self, context: ExecutionContext) -> None:
        now = time.time()
        if context.tracker.started_at is not None:
            context.usage.add(self.engine_facts.sample())
        if self._hand_back.is_set():
            await self._interrupt(context)
            await self._store.hand_back(context.lease, [LogEntry(
                now, "execution_handed_back", context.tracker.current_node_id,
                "Worker shutting down; execution returned to the queue")])
            raise _Stop("handed_back")
        if now - context.last_progress_write >= self._config.progress_write_interval:
            context.last_progress_write = now
            await self._write_progress(context, now)
        if now - context.last_lease_renewal >= self._config.heartbeat_interval:
            context.last_lease_renewal = now
            if not await self._store.renew_lease(context.lease, self._config.lease_seconds):
                await self._stop_engine_work(context, "cancelled")
        await self._poll_store(context, now)
        if context.deadline is not None and now > context.deadline:
            await self._timeout(context)
        if now - context.last_event_at >= self._config.silence_check_interval:
            context.last_event_at = now
            outcome = await self._reconcile(context, "no engine event for a while")
            if outcome is not None:
                raise _Stop(outcome)

    async def _poll_store(self, context: ExecutionContext, now: float) -> None:
        """At most every cancel_poll_interval: is the job still ours, and (while a
        prefetched prompt waits) has more urgent work arrived?"""
        if context.cancel_event.is_set():
            await self._stop_engine_work(context, "cancelled")
        if now - context.last_cancel_poll >= self._config.cancel_poll_interval:
            context.last_cancel_poll = now
            if not await self._store.still_owns(context.lease):
                await self._stop_engine_work(context, "cancelled")
            if context.prefetched and context.tracker.started_at is None:
                await self._yield_to_urgent_work(context, now)

    async def _write_progress(self, context: ExecutionContext, now: float) -> None:
        """Progress, log, and (when asked for) a preview and a progress webhook, together."""
        snapshot = context.tracker.snapshot()
        previews = await self._previews_due(context, now)
        if previews:
            context.unsent_preview_key = previews[0].storage_key
        webhook = self._progress_event(context, snapshot, now)
        if webhook is not None and context.unsent_preview_key is not None:
            webhook["preview"], context.unsent_preview_key = context.unsent_preview_key, None
        if not await self._store.record_progress(
            context.lease, snapshot, context.tracker.drain_log(), webhook=webhook,
            outputs=previews,
            engine_metrics=_usage_metrics(context) if context.usage.samples else None,
        ):
            await self._stop_engine_work(context, "cancelled")

    async def _previews_due(self, context: ExecutionContext, now: float) -> list[OutputRecord]:
        """With include_intermediate, the newest sampler preview, kept at most once per
        progress_event_interval as an intermediate output."""
        preview = context.latest_preview
        wanted = context.execution.options.get("notification_config", {}).get(
            "include_intermediate")
        if (not wanted or preview is None or preview is context.stored_preview
                or now - context.last_preview_stored < self._config.progress_event_interval):
            return []
        context.stored_preview, context.last_preview_stored = preview, now
        context.previews_stored += 1
        try:
            return [await self._collector.store_preview(
                context.execution, preview.node_id, preview.content_type, preview.image,
                context.previews_stored)]
        except (StorageError, OSError) as exc:  # a preview is a courtesy: skip it, go on
            log.warning("preview of %s not stored: %s", context.execution.id, exc)
            return []

    def _progress_event(self, context: ExecutionContext, snapshot: ProgressSnapshot,
                        now: float) -> dict[str, Any] | None:
        """An `execution.progress` webhook, when asked for: at most one per
        webhook_progress_interval, plus one whenever a node completes."""
        wanted = context.execution.options.get("notification_config", {}).get("include_progress")
        if not wanted or context.execution.webhook_url is None:
            return None
        node_done = snapshot.completed_nodes > context.progress_nodes_sent
        recent = now - context.last_progress_event < self._config.progress_event_interval
        if recent and not node_done:
            return None
        context.last_progress_event, context.progress_nodes_sent = now, snapshot.completed_nodes
        return {"progress": snapshot.progress, "current_node": snapshot.current_node,
                "current_step": snapshot.current_step, "total_steps": snapshot.total_steps,
                "completed_nodes": snapshot.completed_nodes,
                "total_nodes": context.tracker.total_nodes}

    async def _yield_to_urgent_work(self, context: ExecutionContext, now: float) -> None:
        """A prefetched prompt waits in ComfyUI's queue; if a more urgent execution has
        arrived since, take ours out and give it back, so the urgent one runs first."""
        if not await self._store.has_queued_above(context.execution.priority, now,
                                                  self.claim_match()):
            return
        await self._interrupt(context)
        await self._store.hand_back(context.lease, [LogEntry(
            now, "execution_handed_back", None,
            "Prefetched prompt withdrawn for a more urgent execution")])
        raise _Stop("handed_back")

    async def _stop_engine_work(self, context: ExecutionContext, outcome: Outcome) -> None:
        """Interrupt our prompt in ComfyUI, wait until it has let go, and leave."""
        await self._interrupt(context)
        raise _Stop(outcome)

    async def _interrupt(self, context: ExecutionContext) -> None:
        try:
            await self._client.delete_queued([context.prompt_id])
            await self._client.interrupt(context.prompt_id)
        except EngineUnavailable:
            return
        deadline = time.monotonic() + _INTERRUPT_GRACE
        while time.monotonic() < deadline:
            event = await context.subscription.next(deadline - time.monotonic())
            if event is not None and not isinstance(event, PreviewImage):
                context.tracker.apply(event)  # files written meanwhile are removed too
            if isinstance(event, ExecutionInterrupted | ExecutionFinished | ExecutionError
                          | ConnectionLost) or event is None:
                return

    async def _timeout(self, context: ExecutionContext) -> None:
        await self._interrupt(context)
        timeout = context.execution.options.get("execution_config", {}).get("timeout")
        failure = Failure(
            error_type="TIMEOUT",
            message=f"Execution exceeded its timeout of {timeout}s",
            retryable=False,
            node_id=context.tracker.current_node_id,
            node_type=context.tracker.class_of(context.tracker.current_node_id),
        )
        raise _Stop(await self._fail(context, failure))

    # ------------------------------------------------------------------ outcomes

    async def _finish(self, context: ExecutionContext) -> Outcome:
        try:
            history = await self._client.history(context.prompt_id)
            if history is None:
                return await self._engine_lost(context, "ComfyUI has no history for the prompt")
            status = history.get("status") or {}
            if status.get("status_str") == "error":
                return await self._fail(context, Failure(
                    error_type="WORKFLOW_EXECUTION_FAILED",
                    message="ComfyUI reported an error for the prompt", retryable=False))
            async with self._lease_kept(context):
                outputs = await self._collector.collect(context.execution,
                                                        history.get("outputs") or {})
        except StorageError as exc:
            return await self._fail(context, Failure(
                error_type="OUTPUT_STORAGE_FAILED", retryable=True,
                message=f"The outputs could not be stored: {exc}"))
        except EngineError as exc:
            return await self._engine_lost(context, f"ComfyUI's outputs could not be read: {exc}")
        log_entries = [*context.tracker.drain_log(), LogEntry(
            time.time(), "execution_completed", None,
            f"Workflow completed with {len(outputs)} output(s)")]
        completed = await self._patiently(context, "completed", lambda: self._store.complete(
            context.lease, outputs, context.tracker.final_snapshot(), context.tracker.engine_time(),
            log_entries, engine_metrics=_usage_metrics(context)))
        return "completed" if completed else "cancelled"

    @contextlib.asynccontextmanager
    async def _lease_kept(self, context: ExecutionContext) -> AsyncIterator[None]:
        """Renew the lease while a long step runs outside the event loop of the prompt
        (moving gigabytes of video to S3 may outlast it), so the rescuer never takes back
        an execution whose outputs are still being stored."""
        async def renew() -> None:
            while True:
                await asyncio.sleep(self._config.heartbeat_interval)
                try:
                    await self._store.renew_lease(context.lease, self._config.lease_seconds)
                except StoreError as exc:
                    log.warning("lease of %s not renewed: %s", context.lease.execution_id, exc)

        renewer = asyncio.create_task(renew(), name=f"lease-{context.lease.execution_id}")
        try:
            yield
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer

    async def _after_interrupt(self, context: ExecutionContext) -> Outcome:
        if not await self._store.still_owns(context.lease):
            return "cancelled"
        return await self._fail(context, Failure(
            error_type="INTERRUPTED", message="ComfyUI interrupted the prompt",
            retryable=True))

    async def _reconcile(self, context: ExecutionContext, reason: str) -> Outcome | None:
        """The socket dropped: find out from ComfyUI itself what became of the prompt."""
        if not await self._engine_back():
            return await self._engine_lost(context, f"ComfyUI exited or is unreachable ({reason})")
        try:
            if await self._client.history(context.prompt_id) is not None:
                return await self._finish(context)
            queue = await self._client.queue()
            if _prompt_in_queue(queue, context.prompt_id):
                return await self._engine_hung(context) if self._is_hung(context, queue) else None
        except EngineUnavailable as exc:
            return await self._engine_lost(context, str(exc))
        return await self._engine_lost(context, "ComfyUI lost the prompt")

    async def _engine_back(self) -> bool:
        """After the socket dropped: True once it is up again; False as soon as the process
        is seen gone (it may be reaped a moment after the socket closes) or after
        reconnect_timeout, which is kept well inside the lease, so the job is retried by us
        rather than rescued."""
        deadline = time.monotonic() + self._config.reconnect_timeout
        while time.monotonic() < deadline:
            if not self._engine.is_alive():
                return False
            if self._client.connected:
                return True
            await asyncio.sleep(_RECONNECT_POLL_SECONDS)
        return False

    def _is_hung(self, context: ExecutionContext, queue: dict[str, Any]) -> bool:
        waited = time.time() - context.submitted_at
        return (context.tracker.started_at is None and not queue.get("queue_running")
                and waited >= self._config.watchdog_timeout)

    async def _engine_hung(self, context: ExecutionContext) -> Outcome:
        """The watchdog: ComfyUI answers HTTP, but its prompt worker has stopped."""
        waited = time.time() - context.submitted_at
        restarted = await self._engine.restart()
        return await self._fail(context, Failure(
            error_type="ENGINE_HUNG", retryable=True,
            message=f"ComfyUI queued the prompt but ran nothing for {waited:.0f}s"
                    + ("; it was restarted" if restarted else "")))

    async def _engine_lost(self, context: ExecutionContext, reason: str) -> Outcome:
        failure = Failure(error_type="ENGINE_CRASHED", message=reason, retryable=True,
                          node_id=context.tracker.current_node_id,
                          node_type=context.tracker.class_of(context.tracker.current_node_id))
        return await self._fail(context, failure)

    async def _patiently(self, context: ExecutionContext, status: str,
                         write: Callable[[], Awaitable[bool]]) -> bool:
        """A write the job cannot do without, tried again while the store restarts; one
        that committed but lost its reply counts as written (worker/patience.py)."""
        ours = already_written(lambda: self._store.execution(context.lease.execution_id),
                               context.lease, status, context.prompt_id)
        return bool(await when_store_answers(write, within=self._config.lease_seconds / 2,
                                             ours=ours))

    async def _fail(self, context: ExecutionContext, failure: Failure) -> Outcome:
        execution = context.execution
        retries_left = execution.max_attempts - execution.attempt
        log_entries = context.tracker.drain_log()
        gpu_time = context.tracker.engine_time()
        if failure.retryable and retries_left > 0:
            delay = retry_delay(execution.attempt)
            body = failure.body(execution, retries_left - 1, delay)
            log_entries.append(LogEntry(time.time(), "execution_retry_scheduled", failure.node_id,
                                        f"{failure.message}; retrying in {delay:.0f}s"))
            requeued = await self._patiently(context, "queued", lambda: self._store.requeue(
                context.lease, body, time.time() + delay, log_entries))
            return "requeued" if requeued else "cancelled"
        body = failure.body(execution, 0, None)
        log_entries.append(LogEntry(time.time(), "execution_failed", failure.node_id,
                                    failure.message))
        failed = await self._patiently(context, "failed", lambda: self._store.fail(
            context.lease, body, gpu_time, log_entries, engine_metrics=_usage_metrics(context)))
        return "failed" if failed else "cancelled"


def _usage_metrics(context: ExecutionContext) -> dict[str, float | None]:
    return context.usage.metrics(context.tuning.gpu_memory_fraction)


def _prompt_in_queue(queue: dict[str, Any], prompt_id: str) -> bool:
    for section in ("queue_running", "queue_pending"):
        for item in queue.get(section) or []:
            if isinstance(item, list) and len(item) > 1 and item[1] == prompt_id:
                return True
    return False
