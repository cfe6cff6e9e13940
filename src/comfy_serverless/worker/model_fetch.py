"""Before an attempt's prompt reaches ComfyUI: each model source its loader inputs name
(checked at submit, kept in the execution's options) is fetched through the worker's one
ModelCache, held against eviction until the attempt ends, placed in its model folder, and
the input rewritten to the placed file's name.

A download can take minutes, and nothing else runs for the attempt meanwhile, so the wait
does the attempt's housekeeping itself, once per `progress_event_interval`: it renews the
lease, notices a cancel, and reports the download. The report is honest about what it
knows: `model_downloading` log entries (at the first bytes, then at most every
_LOG_EVERY seconds, and the last count) with details {source (its display form, no query
string), bytes_done, bytes_total (null while the server has not said)}, a
`model_downloaded` entry once the file is verified, and, with include_progress, an
`execution.progress` webhook per tick that carries the same details as `model_download`.
A file already in the cache reports nothing.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from comfy_serverless.model_sources import (
    CachedModel,
    ModelCache,
    ModelSource,
    ModelSourceError,
    ModelUnavailable,
    SourcePolicy,
    parse_source,
)
from comfy_serverless.store.models import FileSource
from comfy_serverless.store.options import ModelSourceInput
from comfy_serverless.store.records import LogEntry
from comfy_serverless.store.store import Store
from comfy_serverless.worker.execution_context import ExecutionContext, ExecutorConfig, StopRun

__all__ = ["DownloadReport", "ModelFetchFailed", "ModelFetcher", "PlacementFailed"]

_LOG_EVERY = 5.0
_UNKNOWN_SOURCE = FileSource(display="", host="", key="")


class PlacementFailed(ModelUnavailable):
    """The model is cached but could not be linked into its folder (a filesystem error)."""

    retryable = True


class ModelFetchFailed(Exception):
    """The model source of one loader input could not be had: which node and input, the
    source's display form (never its query string or a credential), and the cause."""

    def __init__(self, item: ModelSourceInput, class_type: str | None, display: str | None,
                 cause: ModelSourceError) -> None:
        super().__init__(f"the model for input '{item.input}' could not be made available: "
                         f"{cause}")
        self.node_id, self.input, self.class_type = item.node_id, item.input, class_type
        self.display = display
        self.retryable = isinstance(cause, ModelUnavailable) and cause.retryable


@dataclass
class DownloadReport:
    """What is known of one download: fed by the cache's progress calls, read by the
    wait loop, which writes what changed."""

    source: str
    node_id: str
    bytes_done: int = 0
    bytes_total: int | None = None
    logged_at: float | None = None
    logged_done: int = -1

    def progress(self, done: int, total: int | None) -> None:
        self.bytes_done, self.bytes_total = done, total

    @property
    def started(self) -> bool:
        return self.logged_at is not None or self.bytes_done > 0

    def details(self) -> dict[str, Any]:
        return {"source": self.source, "bytes_done": self.bytes_done,
                "bytes_total": self.bytes_total}

    def entries(self, now: float, model: CachedModel | None) -> list[LogEntry]:
        """The log entries due now: a `model_downloading` one when bytes arrived since the
        last (at most every _LOG_EVERY seconds, always at the end), and `model_downloaded`
        with the verified file once `model` is known."""
        entries = []
        fresh = self.bytes_done != self.logged_done
        due = self.logged_at is None or now - self.logged_at >= _LOG_EVERY or model is not None
        if self.started and fresh and due:
            self.logged_at, self.logged_done = now, self.bytes_done
            total = "?" if self.bytes_total is None else str(self.bytes_total)
            entries.append(LogEntry(now, "model_downloading", self.node_id,
                                    f"Downloading {self.source}: {self.bytes_done} of "
                                    f"{total} bytes", self.details()))
        if model is not None and self.started:
            entries.append(LogEntry(now, "model_downloaded", self.node_id,
                                    f"Downloaded {self.source} ({model.size} bytes, sha256 "
                                    f"{model.sha256})", {**self.details(),
                                                         "sha256": model.sha256}))
        return entries


class ModelFetcher:
    """One per worker: its cache, the folder its model folders live in, and how a tier's
    allowlist becomes a policy (Settings.model_source_policy). The cache is made (its
    folders created) at the first job that names a source, so that a worker whose jobs
    never do needs no writable models folder."""

    def __init__(self, make_cache: Callable[[], ModelCache], models_dir: Path,
                 policy_for: Callable[[Sequence[str]], SourcePolicy], hf_endpoint: str,
                 store: Store, config: ExecutorConfig,
                 clock: Callable[[], float] = time.time) -> None:
        self._make_cache, self.models_dir, self.policy_for = make_cache, models_dir, policy_for
        self.hf_endpoint, self._store, self._config, self._clock = (
            hf_endpoint, store, config, clock)
        # Told when a file was placed (the model keeper publishes the folders again soon).
        self.on_placed: Callable[[], None] = lambda: None

    @functools.cached_property
    def cache(self) -> ModelCache:
        return self._make_cache()

    def placed(self, link: Path) -> tuple[str, tuple[FileSource, ...]] | None:
        """For a file of a model folder placed from the cache: its sha256 and sources (the
        inventory's PlacedLookup). Only a symbolic link may be one, so the cache is made
        only where one is found."""
        if not link.is_symlink():
            return None
        try:
            found = self.cache.placed(link)
        except OSError:  # no cache could be made: nothing was placed from it
            return None
        if found is None:
            return None
        sha256, origins = found
        # A file whose sources were not recorded is placed from nowhere known: no tier's
        # allowlist matches it, so it is shown to and usable by no key until fetched again.
        return sha256, tuple(FileSource(o.display, o.host, o.key) for o in origins) or (
            _UNKNOWN_SOURCE,)

    async def prepare(self, context: ExecutionContext) -> dict[str, Any]:
        """The workflow with each model source replaced by its placed file's name; every
        file stays held (context.held_models) until the attempt ends. Raises
        ModelFetchFailed, and StopRun (cancelled meanwhile)."""
        execution = context.execution
        sources = execution.options.model_sources
        if not sources.inputs:
            return execution.workflow
        policy = self.policy_for(sources.allowed_hosts)
        workflow = {node_id: {**node, "inputs": dict(node.get("inputs") or {})}
                    for node_id, node in execution.workflow.items()}
        for item in sources.inputs:
            workflow[item.node_id]["inputs"][item.input] = await self._placed(
                context, item, policy, workflow[item.node_id].get("class_type"))
        return workflow

    async def _placed(self, context: ExecutionContext, item: ModelSourceInput,
                      policy: SourcePolicy, class_type: str | None) -> str:
        """The name under which the input's model is placed; ModelFetchFailed if it cannot
        be had."""
        display = None
        try:
            source = parse_source(item.source, sha256=item.sha256,
                                  hf_endpoint=self.hf_endpoint)
            display = source.display
            model = await self._held(context, item, source, policy)
            placed = self._place(model, item.folder)
            self.on_placed()
            return placed
        except ModelSourceError as exc:
            raise ModelFetchFailed(item, class_type, display, exc) from exc

    def _place(self, model: CachedModel, folder: str) -> str:
        """The cached file linked into its model folder; a filesystem error is a retryable
        MODEL_UNAVAILABLE (the file is in the cache: the next attempt links it again)."""
        try:
            return self.cache.place(model, self.models_dir / folder)
        except OSError as exc:
            raise PlacementFailed(f"the cached file could not be placed in '{folder}' "
                                  f"({type(exc).__name__})") from exc

    async def _held(self, context: ExecutionContext, item: ModelSourceInput,
                    source: ModelSource, policy: SourcePolicy) -> CachedModel:
        """The fetched file, pinned for the rest of the attempt; the attempt's housekeeping
        and the download's report go on while it comes."""
        report = DownloadReport(source.display, item.node_id)
        held = self.cache.use(source, policy, report.progress)
        entering = asyncio.ensure_future(context.held_models.enter_async_context(held))
        try:
            while not entering.done():
                await asyncio.wait({entering}, timeout=self._config.progress_event_interval)
                if not entering.done():
                    await self._keep_attempt(context, report)
        except BaseException:
            entering.cancel()  # and waited for: no download goes on once the attempt ends
            await asyncio.wait({entering})
            raise
        model = entering.result()
        await self._write(context, report, model)
        return model

    async def _keep_attempt(self, context: ExecutionContext, report: DownloadReport) -> None:
        """One tick of a long wait: a cancel or a lost lease ends the attempt."""
        now = self._clock()
        if context.cancel_event.is_set():
            raise StopRun("cancelled")
        if now - context.last_lease_renewal >= self._config.heartbeat_interval:
            context.last_lease_renewal = now
            if not await self._store.claims.renew_lease(context.lease,
                                                        self._config.lease_seconds):
                raise StopRun("cancelled")
        await self._write(context, report, None)

    async def _write(self, context: ExecutionContext, report: DownloadReport,
                     model: CachedModel | None) -> None:
        entries = report.entries(self._clock(), model)
        if not report.started:
            return
        notify = context.execution.options.notify
        webhook = None
        if notify.include_progress and context.execution.webhook_url is not None:
            snapshot = context.tracker.snapshot()
            webhook = {"progress": snapshot.progress, "current_node": None,
                       "current_step": None, "total_steps": None,
                       "completed_nodes": snapshot.completed_nodes,
                       "total_nodes": context.tracker.total_nodes,
                       "model_download": report.details()}
        if not await self._store.claims.record_progress(
                context.lease, context.tracker.snapshot(), entries, webhook=webhook):
            raise StopRun("cancelled")
