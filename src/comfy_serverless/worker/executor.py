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
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from comfy_serverless.engine.comfyui.client import ComfyUIClient
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
from comfy_serverless.engine.comfyui.tuning import EngineTuning
from comfy_serverless.errors import EnginePromptRejected, EngineUnavailable, StoreUnavailable
from comfy_serverless.queue.outcome import Attempt, Retry, decide
from comfy_serverless.store.records import ClaimMatch, ExecutionRecord, LogEntry
from comfy_serverless.store.store import Store
from comfy_serverless.worker.attempt_cleanup import AttemptCleanup
from comfy_serverless.worker.completion import OutputCompletion
from comfy_serverless.worker.defects import after_defect
from comfy_serverless.worker.engine_facts import EngineFacts
from comfy_serverless.worker.engine_history import EngineHistory
from comfy_serverless.worker.engine_watch import (
    EngineHung,
    EngineLost,
    EngineWatch,
    PromptFinished,
    PromptWatched,
)
from comfy_serverless.worker.execution_context import (
    ExecutionContext,
    ExecutorConfig,
    Outcome,
    StopRun,
)
from comfy_serverless.worker.failures import (
    SUBMISSION_ERRORS,
    Failure,
    engine_error_failure,
    rejection_failure,
    submission_failure,
)
from comfy_serverless.worker.input_upload import InputUploader
from comfy_serverless.worker.model_fetch import ModelFetcher
from comfy_serverless.worker.outputs import OutputCollector
from comfy_serverless.worker.patience import already_written, when_store_answers
from comfy_serverless.worker.progress_writer import ProgressPace, ProgressWriter
from comfy_serverless.worker.prompt_submission import PromptSubmission
from comfy_serverless.worker.tracked_prompt import TrackedPrompt
from comfy_serverless.worker.wakeups import Wakeups

__all__ = ["Executor"]

log = logging.getLogger(__name__)


class Executor:
    def __init__(
        self, config: ExecutorConfig, store: Store, engine: Engine, client: ComfyUIClient,
        collector: OutputCollector, wakeups: Wakeups, *, inputs: InputUploader | None = None,
        prompt_for: Callable[[dict[str, Any]], dict[str, Any]] = dict,
        claim_match: Callable[[], ClaimMatch] = ClaimMatch, facts: EngineFacts | None = None,
        clock: Callable[[], float] = time.time, models: ModelFetcher | None = None,
    ) -> None:
        """`prompt_for`: what is submitted for a workflow (the worker adds its pinned model
        loaders). `claim_match`: which queued work this worker may take, for yielding to
        urgent work. `facts`: what is known of its ComfyUI, replaced by learn(). `models`:
        fetches the model sources a workflow names."""
        self._config, self._store, self._client = config, store, client
        self._collector, self._wakeups = collector, wakeups
        self._submission = PromptSubmission(client, inputs, prompt_for, models)
        self._claim_match, self._facts, self._clock = claim_match, facts or EngineFacts(), clock
        self._watch = EngineWatch(engine, client, reconnect_timeout=config.reconnect_timeout,
                                  watchdog_timeout=config.watchdog_timeout, clock=clock)
        self._pace = ProgressPace(config.progress_write_interval, config.progress_event_interval)
        self._completion = OutputCompletion(
            store, client, collector, lease_seconds=config.lease_seconds,
            heartbeat_interval=config.heartbeat_interval)
        self._cleanup = AttemptCleanup(store, collector.engine_files, EngineHistory(
            client, keep=config.keep_engine_history), inputs)
        self._hand_back = asyncio.Event()

    def learn(self, facts: EngineFacts) -> None:
        """What the worker read of its ComfyUI again (after a restart, or a stats refresh);
        the next submission and claim use it."""
        self._facts = facts

    def request_hand_back(self) -> None:
        """Graceful shutdown: interrupt the running job and return it to the queue unharmed."""
        self._hand_back.set()

    async def run(self, execution: ExecutionRecord, *, submitted: asyncio.Event | None = None,
                  prefetched: bool = False) -> Outcome:
        """Run one claimed execution to its outcome. `submitted` is set once ComfyUI holds the
        prompt; a `prefetched` run was queued behind another job and yields its place to a
        more urgent execution until it starts."""
        outcome: Outcome | None = None
        with self._wakeups.watch_cancel(execution.id) as cancel_event:
            context = self._context_for(execution, cancel_event)
            context.prefetched = prefetched
            try:
                await self._submit(context)
                if submitted is not None:
                    submitted.set()
                outcome = await self._follow(context)
            except StopRun as stop:
                outcome = stop.outcome
            except Exception:  # a defect: back in the queue now, not when the lease runs out
                outcome = await after_defect(context, self._interrupt, self._fail)
            finally:
                await context.held_models.aclose()
                self._client.unsubscribe(context.prompt_id)
                if submitted is not None:
                    submitted.set()
                if outcome in ("completed", "failed"):  # recorded: wake `results?wait=`
                    self._wakeups.finished(execution.id)  # before ComfyUI's folders empty
                await self._cleanup.leave_engine_folders(execution, context.prompt_id,
                                                         context.tracker.reported_files)
        await self._cleanup.after(execution, context.prompt_id, outcome)
        return outcome

    def _context_for(self, execution: ExecutionRecord, cancel_event: asyncio.Event
                     ) -> ExecutionContext:
        prompt_id = execution.engine_prompt_id or str(uuid.uuid4())
        run = execution.options.run
        now = self._clock()
        tracker = TrackedPrompt(execution.workflow, self._clock,
                                identify=self._cleanup.identify_reported)
        return ExecutionContext(
            execution=execution, prompt_id=prompt_id, tracker=tracker,
            subscription=self._client.subscribe(prompt_id),
            progress=ProgressWriter(self._store, self._collector, self._pace, execution,
                                    tracker, now),
            timeout=float(run.timeout) if run.timeout else None, cancel_event=cancel_event,
            tuning=EngineTuning(run.gpu_memory_fraction, run.enable_optimization),
            last_lease_renewal=now, last_cancel_poll=now, last_event_at=now)

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
        context.last_event_at = self._clock()
        if isinstance(event, PreviewImage):
            context.progress.see_preview(event)
            return None
        context.tracker.apply(event)
        if isinstance(event, ExecutionStarted) and context.timeout:
            context.deadline = context.last_event_at + context.timeout
        return await self._handle(context, event)

    async def _submit(self, context: ExecutionContext) -> None:
        allocation = self._facts.claim_allocation(context.prompt_id)
        if context.execution.engine_prompt_id is None and not await self._patiently(
                context, "processing", lambda: self._store.claims.set_engine_prompt(
                    context.lease, context.prompt_id, allocation)):
            raise StopRun("lost")
        if (refusal := self._facts.refusal(context.tuning)) is not None:
            raise StopRun(await self._fail(context, refusal))
        try:
            await self._submission.submit(context, self._facts.output_classes)
            context.submitted_at = self._clock()
        except SUBMISSION_ERRORS as exc:
            raise StopRun(await self._fail(context, submission_failure(exc))) from exc
        except EnginePromptRejected as exc:
            raise StopRun(await self._fail(context, rejection_failure(exc))) from exc
        except EngineUnavailable as exc:
            raise StopRun(await self._engine_lost(context, str(exc))) from exc

    async def _handle(self, context: ExecutionContext, event: EngineEvent) -> Outcome | None:
        match event:
            case ExecutionFinished():
                return await self._finish(context, context.tracker.streamed_outputs())
            case ExecutionError():
                return await self._fail(context, engine_error_failure(event))
            case ExecutionInterrupted():
                return await self._after_interrupt(context)
            case ConnectionLost(reason=reason):
                return await self._reconcile(context, reason)
        return None

    # ------------------------------------------------------------------ periodic work

    async def _housekeeping(self, context: ExecutionContext) -> None:
        now = self._clock()
        if context.tracker.started_at is not None:
            context.usage.add(self._facts.sample())
        if self._hand_back.is_set():
            await self._give_back(context, LogEntry(
                now, "execution_handed_back", context.tracker.current_node_id,
                "Worker shutting down; execution returned to the queue"))
        if context.progress.due(now) and not await context.progress.write(
                now, context.usage_metrics() if context.usage.samples else None):
            await self._stop_engine_work(context, "cancelled")
        if now - context.last_lease_renewal >= self._config.heartbeat_interval:
            context.last_lease_renewal = now
            if not await self._store.claims.renew_lease(context.lease, self._config.lease_seconds):
                await self._stop_engine_work(context, "cancelled")
        await self._poll_store(context, now)
        if context.deadline is not None and now > context.deadline:
            await self._timeout(context)
        if now - context.last_event_at >= self._config.silence_check_interval:
            context.last_event_at = now
            outcome = await self._reconcile(context, "no engine event for a while")
            if outcome is not None:
                raise StopRun(outcome)

    async def _poll_store(self, context: ExecutionContext, now: float) -> None:
        """At most every cancel_poll_interval: is the job still ours, and (while a
        prefetched prompt waits) has more urgent work arrived?"""
        if context.cancel_event.is_set():
            await self._stop_engine_work(context, "cancelled")
        if now - context.last_cancel_poll >= self._config.cancel_poll_interval:
            context.last_cancel_poll = now
            if not await self._store.claims.still_owns(context.lease):
                await self._stop_engine_work(context, "cancelled")
            if context.prefetched and context.tracker.started_at is None:
                await self._yield_to_urgent_work(context, now)

    async def _yield_to_urgent_work(self, context: ExecutionContext, now: float) -> None:
        """A prefetched prompt waits in ComfyUI's queue; if a more urgent execution has
        arrived since, take ours out and give it back, so the urgent one runs first."""
        if not await self._store.claims.has_queued_above(context.execution.priority, now,
                                                         self._claim_match()):
            return
        await self._give_back(context, LogEntry(
            now, "execution_handed_back", None,
            "Prefetched prompt withdrawn for a more urgent execution"))

    async def _give_back(self, context: ExecutionContext, why: LogEntry) -> None:
        """Withdraw our prompt from ComfyUI and return the job to the queue unharmed."""
        await self._interrupt(context)
        await self._store.claims.hand_back(context.lease, [why])
        raise StopRun("handed_back")

    async def _stop_engine_work(self, context: ExecutionContext, outcome: Outcome) -> None:
        """Interrupt our prompt in ComfyUI, wait until it has let go, and leave."""
        await self._interrupt(context)
        raise StopRun(outcome)

    async def _interrupt(self, context: ExecutionContext) -> None:
        await self._watch.interrupt(context.prompt_id, context.subscription,
                                    context.tracker.apply)

    async def _timeout(self, context: ExecutionContext) -> None:
        await self._interrupt(context)
        timeout = context.execution.options.run.timeout
        raise StopRun(await self._fail(context, context.tracker.failure_here(
            "TIMEOUT", f"Execution exceeded its timeout of {timeout}s", retryable=False)))

    # ------------------------------------------------------------------ outcomes

    async def _finish(self, context: ExecutionContext, streamed: dict[str, Any] | None
                      ) -> Outcome:
        """`streamed`: the outputs the events carried (no /history read), or None."""
        outputs = await self._completion.collect(context.execution, context.prompt_id, streamed)
        if isinstance(outputs, Failure):
            return await self._fail(context, outputs)
        if isinstance(outputs, EngineLost):
            return await self._engine_lost(context, outputs.reason)
        log_entries = [*context.tracker.drain_log(), LogEntry(
            self._clock(), "execution_completed", None,
            f"Workflow completed with {len(outputs)} output(s)")]
        completed = await self._patiently(context, "completed", lambda: self._store.claims.complete(
            context.lease, outputs, context.tracker.final_snapshot(), context.tracker.engine_time(),
            log_entries, engine_metrics=context.usage_metrics()))
        return "completed" if completed else "cancelled"

    async def _after_interrupt(self, context: ExecutionContext) -> Outcome:
        if not await self._store.claims.still_owns(context.lease):
            return "cancelled"
        return await self._fail(context, Failure(
            error_type="INTERRUPTED", message="ComfyUI interrupted the prompt",
            retryable=True))

    async def _reconcile(self, context: ExecutionContext, reason: str) -> Outcome | None:
        """Events may have been lost: ComfyUI itself says what became of the prompt."""
        prompt = PromptWatched(context.prompt_id, context.tracker.started_at is not None,
                               context.submitted_at)
        match await self._watch.verdict(prompt, reason):
            case PromptFinished():  # events may be missing: the history has the outputs
                return await self._finish(context, None)
            case EngineLost(reason=lost):
                return await self._engine_lost(context, lost)
            case EngineHung(failure=failure):
                return await self._fail(context, failure)
        return None

    async def _engine_lost(self, context: ExecutionContext, reason: str) -> Outcome:
        return await self._fail(context, context.tracker.failure_here(
            "ENGINE_CRASHED", reason, retryable=True))

    async def _patiently(self, context: ExecutionContext, status: str,
                         write: Callable[[], Awaitable[bool]]) -> bool:
        """A write the job cannot do without, tried again while the store restarts; one
        that committed but lost its reply counts as written (worker/patience.py)."""
        ours = already_written(lambda: self._store.executions.execution(context.lease.execution_id),
                               context.lease, status, context.prompt_id)
        return bool(await when_store_answers(write, within=self._config.lease_seconds / 2,
                                             ours=ours))

    async def _fail(self, context: ExecutionContext, failure: Failure) -> Outcome:
        """Report the failure to the outcome policy (queue/outcome.py) and record what it
        decides: queued again after its backoff, or failed for good."""
        context.failing = True
        decision = decide(failure, Attempt.of(context.execution))
        log_entries = context.tracker.drain_log()
        gpu_time = context.tracker.engine_time()
        now = self._clock()
        if isinstance(decision, Retry):
            log_entries.append(LogEntry(now, "execution_retry_scheduled", failure.node_id,
                                        f"{failure.message}; retrying in {decision.delay:.0f}s"))
            requeued = await self._patiently(context, "queued", lambda: self._store.claims.requeue(
                context.lease, decision.error, decision.retry_at(now), log_entries))
            return "requeued" if requeued else "cancelled"
        log_entries.append(LogEntry(now, "execution_failed", failure.node_id, failure.message))
        failed = await self._patiently(context, "failed", lambda: self._store.claims.fail(
            context.lease, decision.error, gpu_time, log_entries,
            engine_metrics=context.usage_metrics()))
        return "failed" if failed else "cancelled"
