"""The warm-up: a workflow the worker runs on its ComfyUI before it takes any job.

The first job on a fresh ComfyUI pays for loading its models: seconds on a GPU for a small
checkpoint, minutes for a large one, on a job that a client is waiting for. The operator
names a workflow that loads them (`warmup_workflow`); the worker runs it after its ComfyUI
starts, and again after each restart of it (a new ComfyUI's cache is empty), and claims
nothing until it has finished. Readiness (`/readyz`, the heartbeat's `warming` state) waits
for it too.

It is not an execution: no row, no bill, no outputs. What it writes is removed from
ComfyUI's folders and its history entry dropped, as an attempt's are (attempt_cleanup.py).

ComfyUI's cache keeps the latest prompt's node outputs (models/warmth.py). The warm-up is
submitted without fresh marks (fresh_outputs.py): a warm-up answered from cache means that
its models are loaded already, which is all it is for; after a restart the cache is empty
and it runs whole. The models it names become the worker's warm models (`prompt_for`), so
model affinity prefers the jobs that use them.

A warm-up that fails (a node error, a refusal, its timeout, a catalog it does not fit) is
logged with the node's error and tried again with back-off, and the worker stays not ready
meanwhile: a worker that cannot run its warm-up should not run jobs either. When it timed
out without ComfyUI running anything, ComfyUI is restarted (as the hung-engine watchdog
would). The file itself is read once, at start: missing or unreadable, the worker does not
start (`WarmupFileError`). Its custom nodes are checked as a job's are, with the node packs
that the worker's own environment scanned clean counted as verified beside the configured
ones (read at each run: a restart may have brought another environment).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from comfy_serverless.engine.comfyui.client import ComfyUIClient, Subscription, WrittenFile
from comfy_serverless.engine.comfyui.messages import (
    ConnectionLost,
    EngineEvent,
    ExecutionError,
    ExecutionFinished,
    ExecutionInterrupted,
    ExecutionStarted,
    NodeExecuted,
)
from comfy_serverless.engine.comfyui.supervisor import Engine
from comfy_serverless.errors import ApiError, EngineError, EnginePromptRejected
from comfy_serverless.validation.catalog import NodeCatalog
from comfy_serverless.validation.prepare import prepare_workflow
from comfy_serverless.validation.rules import ValidationRules
from comfy_serverless.validation.ui_format import is_ui_format
from comfy_serverless.worker.engine_files import EngineFiles
from comfy_serverless.worker.engine_history import EngineHistory
from comfy_serverless.worker.output_kinds import files_in_history

__all__ = ["WarmUp", "WarmupFailed", "WarmupFileError", "WarmupPlan"]

log = logging.getLogger(__name__)

# After a failed warm-up, the next try waits this long, doubling up to the longest pause.
_FIRST_PAUSE = 5.0
_LONGEST_PAUSE = 300.0
# How long an interrupted warm-up is given to let go of ComfyUI.
_INTERRUPT_GRACE = 10.0
_PromptFor = Callable[[dict[str, Any]], dict[str, Any]]


class WarmupFileError(ValueError):
    """The warm-up workflow file is missing, unreadable or not a workflow: a startup error."""


class WarmupFailed(Exception):
    """One run of the warm-up did not finish; the message says why, for the operator."""


@dataclass(frozen=True)
class WarmupPlan:
    """The warm-up workflow, read at start, and how long one run of it may take."""

    source: Path
    workflow: dict[str, Any]
    timeout: float
    rules: ValidationRules

    @classmethod
    def load(cls, source: Path, *, timeout: float, rules: ValidationRules) -> WarmupPlan:
        """Read the file: a workflow as a submit takes it (API format, with or without the
        `nodes` envelope, or UI format). The API format is checked for structure now; the
        catalog checks (and a UI file's conversion) wait for ComfyUI's catalog."""
        try:
            workflow = json.loads(source.read_text(encoding="utf-8"))
        except OSError as exc:
            raise WarmupFileError(f"warmup_workflow {source} cannot be read: {exc}") from exc
        except ValueError as exc:
            raise WarmupFileError(f"warmup_workflow {source} is not JSON: {exc}") from exc
        if not isinstance(workflow, dict):
            raise WarmupFileError(f"warmup_workflow {source} is not a JSON object")
        if not is_ui_format(workflow):
            try:
                prepare_workflow(workflow, {}, rules, None)
            except ApiError as exc:
                raise WarmupFileError(
                    f"warmup_workflow {source} is not a workflow: {_findings(exc)}") from exc
        return cls(source, workflow, timeout, rules)


@dataclass
class _Run:
    """What one run of the warm-up saw."""

    prompt_id: str
    started: bool = False
    finished: bool = False
    reported: list[WrittenFile] = field(default_factory=list)


class WarmUp:
    def __init__(self, plan: WarmupPlan | None, client: ComfyUIClient, engine: Engine, *,
                 files: EngineFiles, history: EngineHistory, prompt_for: _PromptFor,
                 stopping: asyncio.Event, clock: Callable[[], float] = time.monotonic,
                 verified_packs: Callable[[], Iterable[str]] = tuple) -> None:
        """`prompt_for` makes the prompt of a workflow (the worker's pins added, and its
        models recorded as warm); `stopping` ends a run under way when the worker stops;
        `verified_packs` tells, at each run, the node packs that this worker's environment
        scanned clean (its record is read again after each restart), verified beside the
        plan's rules, as the API counts them for the jobs this worker takes."""
        self._plan = plan
        self._verified_packs = verified_packs
        self._client = client
        self._engine = engine
        self._files = files
        self._history = history
        self._prompt_for = prompt_for
        self._stopping = stopping
        self._clock = clock
        self.done = plan is None
        self.last_duration: float | None = None
        self._retry_at = 0.0
        self._pause = _FIRST_PAUSE

    def needed_again(self) -> None:
        """ComfyUI was restarted: its cache is empty, so the warm-up runs again."""
        if self._plan is not None:
            self.done, self._retry_at, self._pause = False, 0.0, _FIRST_PAUSE

    async def ready_for_claims(self) -> bool:
        """Whether the warm-up has finished on this ComfyUI; if not, run it (when its
        back-off allows). A failure is logged, never raised: the worker waits."""
        if self.done or self._plan is None:
            return True
        if self._clock() < self._retry_at:
            return False
        try:
            self.last_duration = await self.run(self._plan)
        except (WarmupFailed, EngineError) as exc:
            if not self._stopping.is_set():
                log.error("warm-up %s failed, tried again in %.0f s (no job is taken "
                          "until it succeeds): %s", self._plan.source, self._pause, exc)
            self._retry_at = self._clock() + self._pause
            self._pause = min(self._pause * 2, _LONGEST_PAUSE)
            return False
        log.info("warm-up %s finished in %.2f s", self._plan.source, self.last_duration)
        self.done, self._pause = True, _FIRST_PAUSE
        return True

    async def run(self, plan: WarmupPlan) -> float:
        """Run the warm-up once, to its end; its duration. Raises WarmupFailed (or an
        EngineError when ComfyUI does not answer). Nothing it wrote stays in ComfyUI."""
        began = time.monotonic()
        graph = await self._graph(plan)
        run = _Run(str(uuid.uuid4()))
        subscription = self._client.subscribe(run.prompt_id)
        log.info("warm-up %s started (prompt %s)", plan.source, run.prompt_id)
        try:
            await self._client.wait_connected()
            await self._submit(graph, run.prompt_id)
            await self._follow(subscription, run, began, plan.timeout)
        finally:
            self._client.unsubscribe(run.prompt_id)
            await self._files.remove_written(run.prompt_id, run.reported)
            await self._history.forget(run.prompt_id, completed=run.finished)
        return time.monotonic() - began

    async def _graph(self, plan: WarmupPlan) -> dict[str, Any]:
        """The warm-up as an API-format graph, checked against this ComfyUI's catalog
        (a UI-format file is converted with it)."""
        catalog = NodeCatalog.from_object_info(await self._client.object_info())
        rules = plan.rules.with_verified_packs(self._verified_packs())
        try:
            prepared = prepare_workflow(plan.workflow, {}, rules, catalog)
        except ApiError as exc:
            raise WarmupFailed(f"it does not fit this ComfyUI: {_findings(exc)}") from exc
        return dict(prepared.graph)

    async def _submit(self, graph: dict[str, Any], prompt_id: str) -> None:
        try:
            await self._client.submit(self._prompt_for(graph), prompt_id)
        except EnginePromptRejected as exc:
            raise WarmupFailed(f"ComfyUI refused it: {exc}; node errors: "
                               f"{json.dumps(exc.node_errors, sort_keys=True)}") from exc

    async def _follow(self, subscription: Subscription, run: _Run, began: float,
                      timeout: float) -> None:
        """Follow the prompt's events to its end; raise WarmupFailed if it does not end well
        within `timeout` of `began` (or the worker stops meanwhile)."""
        deadline = began + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            event = await self._next(subscription, remaining)
            if self._stopping.is_set():
                await self._interrupt(subscription, run)
                raise WarmupFailed("the worker is stopping")
            if event is None:
                break
            self._note(event, run)
            if run.finished:
                return
        await self._interrupt(subscription, run)
        raise WarmupFailed(await self._timed_out(run, timeout))

    def _note(self, event: EngineEvent, run: _Run) -> None:
        """Take in one event: the files an output node reports, and the end of the run."""
        match event:
            case ExecutionStarted():
                run.started = True
            case NodeExecuted(node_id=node_id, output=output):
                run.started = True
                run.reported.extend(
                    self._files.identify(files_in_history({node_id: output})))
            case ExecutionFinished():
                run.finished = True
            case ExecutionError():
                raise WarmupFailed(
                    f"node {event.node_id} ({event.node_type}) failed: "
                    f"{event.exception_type}: {event.exception_message}")
            case ExecutionInterrupted():
                raise WarmupFailed("ComfyUI interrupted it")
            case ConnectionLost(reason=reason):
                raise WarmupFailed(f"the connection to ComfyUI was lost: {reason}")

    async def _next(self, subscription: Subscription, timeout: float) -> EngineEvent | None:
        """The next event of the prompt; None at the timeout or when the worker stops."""
        event = asyncio.ensure_future(subscription.next(timeout))
        stopping = asyncio.ensure_future(self._stopping.wait())
        await asyncio.wait({event, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not event.done():
            event.cancel()
            return None
        return event.result()

    async def _timed_out(self, run: _Run, timeout: float) -> str:
        """Why a run ran out of time; a ComfyUI that never started it is restarted."""
        if run.started:
            return f"it did not finish within warmup_timeout ({timeout:.0f} s)"
        restarted = await self._engine.restart()
        return (f"ComfyUI did not start it within warmup_timeout ({timeout:.0f} s)"
                + ("; ComfyUI was restarted" if restarted else ""))

    async def _interrupt(self, subscription: Subscription, run: _Run) -> None:
        """Take the prompt out of ComfyUI's queue, or stop it running, and wait (a grace at
        most) for ComfyUI to let go, noting the files its nodes report meanwhile."""
        try:
            await self._client.delete_queued([run.prompt_id])
            await self._client.interrupt(run.prompt_id)
        except EngineError:
            return
        deadline = time.monotonic() + _INTERRUPT_GRACE
        while (remaining := deadline - time.monotonic()) > 0:
            event = await subscription.next(remaining)
            if event is None or isinstance(event, ExecutionFinished | ExecutionError
                                           | ExecutionInterrupted | ConnectionLost):
                return
            self._note(event, run)


def _findings(error: ApiError) -> str:
    """An ApiError from validation, as one line: its message and each problem's node."""
    problems = error.details.get("validation_errors") or []
    described = [f"node {problem.get('node_id')}: {problem.get('error')}"
                 for problem in problems if isinstance(problem, dict)]
    return "; ".join([error.message, *described]) if described else error.message
