"""The worker: one ComfyUI, one job at a time, pulled from the store.

Moving parts, each with start/stop and a single-step method for tests:
- the *producer* loop claims the next job when woken (in-process wake-up, or a jittered poll);
- the *executor* runs it (see executor.py);
- the *heartbeat* renews the worker's row with its ComfyUI's /system_stats, its GPU type and
  its warm models, and restarts a ComfyUI child that died between jobs;
- the *model keeper* publishes its model folders and keeps preloaded models warm;
- the *warm-up* (warmup.py) runs before the first claim and after each ComfyUI restart.
A claim prefers jobs whose models are warm here (model affinity) and skips jobs whose
allowed GPU types exclude this worker's, or that ask for an environment it does not run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from dataclasses import replace
from typing import Any

from comfy_serverless.background import wait_at_most
from comfy_serverless.engine.comfyui.client import ComfyUIClient
from comfy_serverless.engine.comfyui.device_usage import GpuMonitor
from comfy_serverless.engine.comfyui.stats import gpu_type_of, has_gpu
from comfy_serverless.engine.comfyui.supervisor import Engine
from comfy_serverless.errors import EngineError, StoreError
from comfy_serverless.logs import execution_context, worker_context
from comfy_serverless.models.warmth import WarmModels
from comfy_serverless.storage.base import OutputStorage
from comfy_serverless.store.records import ClaimMatch, ExecutionRecord, WorkerState
from comfy_serverless.store.store import Store
from comfy_serverless.worker.catalog_publisher import CatalogPublisher
from comfy_serverless.worker.engine_facts import EngineFacts, device_facts, read_hooks
from comfy_serverless.worker.engine_history import EngineHistory
from comfy_serverless.worker.environment_watch import EnvironmentWatch
from comfy_serverless.worker.execution_context import Outcome
from comfy_serverless.worker.executor import Executor
from comfy_serverless.worker.input_upload import InputUploader
from comfy_serverless.worker.model_fetch import ModelFetcher
from comfy_serverless.worker.model_keeper import ModelKeeper, keeper_for
from comfy_serverless.worker.outputs import OutputCollector
from comfy_serverless.worker.producer_pace import has_room, log_drain, wait_for_change
from comfy_serverless.worker.wakeups import Wakeups
from comfy_serverless.worker.warmup import WarmUp
from comfy_serverless.worker.worker_config import WorkerConfig

__all__ = ["Worker"]

log = logging.getLogger(__name__)

# After asking the executor to hand its job back, how long to wait before cancelling it.
_HAND_BACK_SECONDS = 15.0


class Worker:
    def __init__(self, config: WorkerConfig, store: Store, engine: Engine,
                 storage: OutputStorage, wakeups: Wakeups | None = None,
                 model_fetcher: ModelFetcher | None = None) -> None:
        self.config, self._model_fetcher = config, model_fetcher
        self._store = store
        self._engine = engine
        self._storage = storage
        self.wakeups = wakeups or Wakeups()
        self._client: ComfyUIClient | None = None
        self._executor: Executor | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._exits = contextlib.AsyncExitStack()
        self._stopping = asyncio.Event()
        self.running: dict[str, asyncio.Event] = {}
        self.system_stats: dict[str, Any] | None = None
        self._catalog: CatalogPublisher | None = None
        self._warmup: WarmUp | None = None  # claims wait for it (warmup.py)
        # What is known of its ComfyUI; the executor is told each time it changes.
        self._facts = EngineFacts()
        self.gpu_type = config.gpu_type
        self.warm = WarmModels()
        self.models: ModelKeeper | None = None
        self._gpu_monitor: GpuMonitor | None = None
        self._gpu_monitor_tried = False
        self._hooks: dict[str, Any] | None = None
        self._restarts_seen = 0
        self._catching_up = asyncio.Lock()
        self.environment = EnvironmentWatch(config.environment_dir, config.loaded_environment)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Start ComfyUI (or attach), connect to it, and run the loops in the background."""
        worker_context(self.config.worker_id)
        if self._executor is None:
            await self.prepare()
        await self._exits.enter_async_context(self._store.listen(
            on_work=self.wakeups.work_available, on_cancel=self.wakeups.cancelled))
        self._tasks = [
            asyncio.create_task(self._producer_loop(), name="worker-producer"),
            asyncio.create_task(self._heartbeat_loop(), name="worker-heartbeat"),
        ]
        if self.models is not None:
            self.models.start()

    async def prepare(self) -> None:
        await self._engine.start()
        self._client = ComfyUIClient(self._engine.base_url)
        await self._client.start()
        self._restarts_seen = self._engine.restarts
        self.environment.read()
        self._hooks = await read_hooks(self._client)  # None: no hooks, or not reachable
        self.warm.pinning = self._hooks is not None
        collector = OutputCollector(self._client, self._storage, self.config.spool_dir,
                                    self._engine.local_folders(),
                                    keep_workflow_metadata=self.config.keep_workflow_metadata)
        inputs = InputUploader(self._client, self._storage, self.config.spool_dir,
                               collector.engine_files)
        self._executor = Executor(
            self.config.executor_config(), self._store, self._engine, self._client, collector,
            self.wakeups, inputs=inputs, prompt_for=self.warm.prompt_for,
            claim_match=self.claim_match, facts=self._facts, models=self._model_fetcher)
        self._warmup = WarmUp(
            self.config.warmup, self._client, self._engine, files=collector.engine_files,
            history=EngineHistory(self._client, keep=self.config.keep_engine_history),
            prompt_for=self.warm.prompt_for, stopping=self._stopping,
            verified_packs=self.environment.verified_packs)
        self._catalog = CatalogPublisher(
            self._store, self._client, self.config.worker_id,
            webhook_max_retries=self.config.webhook_max_retries, environment=self.environment,
            on_output_classes=lambda classes: self._learn(
                replace(self._facts, output_classes=classes)))
        self.models = keeper_for(self.config, self._store, self._client, self.warm,
                                 self._model_fetcher)
        await self.heartbeat()
        await self.publish_catalog()
        with contextlib.suppress(EngineError):
            await self.models.publish()

    async def stop(self) -> None:
        """Graceful: stop claiming; let the running job finish within shutdown_grace, else
        interrupt it and hand it back to the queue. Nothing is lost either way."""
        log_drain(self.config.worker_id, self.running, self.config.shutdown_grace)
        self._stopping.set()
        self.wakeups.work_available()
        producer = self._tasks[0] if self._tasks else None
        if producer is not None:
            await wait_at_most(producer, self.config.shutdown_grace)
            if not producer.done() and self._executor is not None:
                self._executor.request_hand_back()
                await wait_at_most(producer, _HAND_BACK_SECONDS)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self.models is not None:
            await self.models.stop()
        await self._exits.aclose()
        with contextlib.suppress(StoreError):
            await self._publish_state("stopped")
        if self._client is not None:
            await self._client.close()
        await self._engine.stop()

    # ------------------------------------------------------------------ one step each

    async def run_once(self) -> Outcome | None:
        """Claim and run one job to its end; None when the queue had nothing for us."""
        execution = await self._claim()
        if execution is None:
            return None
        return await self._execute(execution, asyncio.Event(), prefetched=False)

    async def _claim(self) -> ExecutionRecord | None:
        assert self._catalog is not None, "prepare() first"
        assert self._warmup is not None, "prepare() first"
        if not await self._catalog.ready_for_claims():
            return None
        if not self.running:  # before a claim: a failure here leaves no job leased
            await self._engine.ensure_running()
            await self._catch_up_with_a_restart()
        if not await self._warmup.ready_for_claims():
            return None
        prompt_id = str(uuid.uuid4())
        return await self._store.claims.claim_next(
            self.config.worker_id, self.config.lease_seconds, engine_prompt_id=prompt_id,
            resource_allocation=self._facts.claim_allocation(prompt_id),
            match=self.claim_match())

    def claim_match(self) -> ClaimMatch:
        warm, disk = self.models.held() if self.models else (self.warm.current(), frozenset())
        return self.config.claim_match(self.gpu_type, warm, disk, self.environment)

    async def _catch_up_with_a_restart(self) -> bool:
        """Whether ComfyUI was restarted since the worker last caught up (by a claim, the
        heartbeat or the executor's hung-engine watchdog). A new ComfyUI's cache is empty,
        and its catalog, device, hooks (its pid) and folders may differ: the one path."""
        async with self._catching_up:  # a claim waits for a catch-up under way
            restarts = self._engine.restarts
            if restarts == self._restarts_seen:
                return False
            assert self._client is not None, "prepare() first"
            self._hooks = await self._client.hooks()  # EngineError: caught up next time
            self.environment.read()
            self.warm.pinning = self._hooks is not None
            self._gpu_monitor_tried = False
            self.warm.forget()
            if self._warmup is not None:
                self._warmup.needed_again()
            if self.models is not None:
                self.models.rescan_soon()
            await self._refresh_system_stats()
            await self.publish_catalog()
            self._restarts_seen = restarts
            return True

    async def _execute(self, execution: ExecutionRecord, submitted: asyncio.Event, *,
                       prefetched: bool) -> Outcome:
        assert self._executor is not None, "prepare() first"
        self.running[execution.id] = submitted
        with execution_context(execution.id):
            try:
                outcome = await self._executor.run(execution, submitted=submitted,
                                                   prefetched=prefetched)
            finally:
                del self.running[execution.id]
            log.info("execution %s: %s", execution.id, outcome)
        return outcome

    @property
    def engine_ready(self) -> bool:
        """ComfyUI is running and our event WebSocket to it is up."""
        return (self._client is not None and self._engine.is_alive()
                and self._client.connected)

    @property
    def warmed_up(self) -> bool:
        """No warm-up is configured, or it has finished on its current ComfyUI."""
        return self.config.warmup is None or (self._warmup is not None and self._warmup.done)

    @property
    def current_execution_id(self) -> str | None:
        return next(iter(self.running), None)

    def _state(self) -> str:
        """What its heartbeat says: busy, idle, or warming (no job before its warm-up)."""
        if self.current_execution_id:
            return "busy"
        return "idle" if self.warmed_up else "warming"

    async def run_burst(self) -> list[Outcome]:
        """Run jobs until the queue is empty (deterministic tests and batch runs)."""
        outcomes = []
        while (outcome := await self.run_once()) is not None:
            outcomes.append(outcome)
        return outcomes

    async def publish_catalog(self) -> None:
        """Publish ComfyUI's /object_info, which the API validates workflows against."""
        if self._catalog is not None:
            await self._catalog.publish()

    async def heartbeat(self) -> None:
        if self.system_stats is None:
            await self._refresh_system_stats()
        await self._publish_state(self._state())

    # ------------------------------------------------------------------ loops

    async def _producer_loop(self) -> None:
        """Claim while there is room: one running job, plus `prefetch` more handed to ComfyUI
        behind it once it holds the first, so the GPU never waits for our bookkeeping."""
        tasks: set[asyncio.Task[Outcome]] = set()
        while not self._stopping.is_set():
            if has_room(self.running, self.config.prefetch):
                try:
                    execution = await self._claim()
                except (StoreError, EngineError) as exc:
                    log.warning("worker step failed: %s", exc)
                    execution = None
                if execution is not None:  # counted as running before the next claim
                    prefetched, submitted = bool(self.running), asyncio.Event()
                    self.running[execution.id] = submitted
                    task = asyncio.create_task(
                        self._execute(execution, submitted, prefetched=prefetched))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                    continue
            await wait_for_change(self.wakeups, self.config.poll_interval, self.running,
                                  tasks)
        if tasks:
            await asyncio.wait(tasks)

    async def _heartbeat_loop(self) -> None:
        """Every second: is ComfyUI alive? Every heartbeat_interval: publish our state."""
        last_heartbeat = time.monotonic()
        while not self._stopping.is_set():
            await asyncio.sleep(min(1.0, self.config.heartbeat_interval))
            try:
                last_heartbeat = await self._heartbeat_step(last_heartbeat)
            except (StoreError, EngineError) as exc:
                log.warning("heartbeat failed: %s", exc)

    async def _heartbeat_step(self, last_heartbeat: float) -> float:
        """One round of the heartbeat; returns when our state was last published."""
        if not self._engine.is_alive() and self.current_execution_id is None:
            await self._engine.ensure_running()
        restarted = await self._catch_up_with_a_restart()
        if restarted or time.monotonic() - last_heartbeat >= self.config.heartbeat_interval:
            last_heartbeat = time.monotonic()
            if not restarted:  # after a restart they were read again already
                await self._refresh_system_stats()
            await self._publish_state(self._state())
        published_at = self._catalog.published_at if self._catalog is not None else 0.0
        if time.monotonic() - published_at >= self.config.catalog_refresh_interval:
            await self.publish_catalog()
        return last_heartbeat

    async def _refresh_system_stats(self) -> None:
        if self._client is None:
            return
        try:
            self.system_stats = await self._client.system_stats()
        except EngineError:
            return
        self.gpu_type = self.config.gpu_type or gpu_type_of(self.system_stats)
        self._learn(self._device_facts(self.system_stats))

    def _device_facts(self, stats: dict[str, Any]) -> EngineFacts:
        """NVML is tried once per ComfyUI, where it runs on an NVIDIA GPU."""
        if has_gpu(stats) and not self._gpu_monitor_tried:
            self._gpu_monitor_tried = True
            self._gpu_monitor = GpuMonitor.for_engine(stats, self._hooks)
        return device_facts(self._facts, stats, hooks=self.warm.pinning,
                            monitor=self._gpu_monitor, worker_id=self.config.worker_id,
                            gpu_type=self.gpu_type)

    def _learn(self, facts: EngineFacts) -> None:
        """What is known of its ComfyUI changed: the executor runs the next job with it."""
        self._facts = facts
        if self._executor is not None:
            self._executor.learn(facts)

    async def _publish_state(self, state: str) -> None:
        await self._store.workers.heartbeat_worker(WorkerState(
            id=self.config.worker_id, state=state, gpu_type=self.gpu_type,
            system_stats=self.system_stats, current_execution_id=self.current_execution_id,
            region=self.config.region, warm_models=tuple(sorted(self.warm.current())),
            gpu_type_declared=self.config.gpu_type is not None))

