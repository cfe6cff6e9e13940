"""The model keeper: a worker's background service for its models.

Each pass: publish the model folders when due (start, every `rescan_interval`, after a
ComfyUI restart); describe one more file (sha256, capabilities) in a thread and publish
again; load the active preloads of the worker's region into its ComfyUI with a loader-only
prompt, and pin them (see models/warmth.py) until they expire. Preloads by source are
fetched, pinned in the model cache and placed first (worker/source_preloads.py); once
placed they are published and kept warm like the others.

`held` is what a claim's model affinity matches against: the models warm in ComfyUI and
the files on disk from the model cache (by name, sha256 and sources; bounded, see
models/inventory.py). A worker with neither claims in strict order (the fast query).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from comfy_serverless.background import BackgroundService
from comfy_serverless.engine.comfyui.client import ComfyUIClient
from comfy_serverless.engine.comfyui.messages import (
    ConnectionLost,
    EngineEvent,
    ExecutionError,
    ExecutionFinished,
    ExecutionInterrupted,
    NodeStarted,
)
from comfy_serverless.errors import EngineError
from comfy_serverless.models.inventory import ModelInventory
from comfy_serverless.models.warmth import PRELOAD_NODE, WarmModels
from comfy_serverless.store.models import ModelPreload
from comfy_serverless.store.store import Store
from comfy_serverless.worker.model_fetch import ModelFetcher
from comfy_serverless.worker.source_preloads import SourcePreloads, to_keep_warm

if TYPE_CHECKING:  # worker_config imports this module's ModelKeeperConfig
    from comfy_serverless.worker.worker_config import WorkerConfig

__all__ = ["ModelKeeper", "ModelKeeperConfig", "keeper_for"]

log = logging.getLogger(__name__)

_NextEvent = Callable[[float | None], Awaitable[EngineEvent | None]]


@dataclass(frozen=True)
class ModelKeeperConfig:
    worker_id: str
    region: str | None
    interval: float
    rescan_interval: float
    load_timeout: float = 600.0


class ModelKeeper(BackgroundService):
    name = "model-keeper"

    def __init__(self, config: ModelKeeperConfig, store: Store, client: ComfyUIClient,
                 inventory: ModelInventory, warm: WarmModels,
                 sources: SourcePreloads | None = None) -> None:
        super().__init__(config.interval)
        self._config, self._sources = config, sources
        self._store = store
        self._client = client
        self.inventory = inventory
        self.warm = warm
        self._published_at = float("-inf")
        self._facts_published_at = float("-inf")
        self._facts_pending = False
        self._preloads_applied_at = float("-inf")
        self._engine_failing = False

    def rescan_soon(self) -> None:
        self._published_at = float("-inf")

    def held(self) -> tuple[frozenset[str], frozenset[str]]:
        """(warm, on disk) for a claim: the warm files with their cache tokens, and the
        files placed from the model cache (the most recently used) with theirs."""
        warm = self.warm.current()
        return warm | self.inventory.tokens_of(warm), self.inventory.on_disk()

    async def close(self) -> None:
        if self._sources is not None:
            await self._sources.close()

    async def run_once(self) -> bool:
        """Rescan when due; apply preloads at most every interval, even while hashing; hash
        one more file, publishing new facts at most every interval (not after each file:
        each publication rewrites the worker's whole folder list)."""
        try:
            now = time.monotonic()
            if now - self._published_at >= self._config.rescan_interval:
                await self.publish()
            if now - self._preloads_applied_at >= self._config.interval:
                self._preloads_applied_at = now
                await self.apply_preloads()
            described = await self.inventory.describe_next()
            self._facts_pending = self._facts_pending or described
            if self._facts_pending and (
                    not described or now - self._facts_published_at >= self._config.interval):
                await self._publish_facts()
        except EngineError as exc:
            if not self._engine_failing:
                log.warning("model keeper: cannot read ComfyUI's models: %s", exc)
            self._engine_failing = True
            return False
        self._engine_failing = False
        return described

    async def _publish_facts(self) -> None:
        await self._store.models.publish(self._config.worker_id, self.inventory.files)
        self._facts_published_at = time.monotonic()
        self._facts_pending = False

    async def publish(self) -> None:
        files = await self.inventory.scan()
        await self._store.models.publish(self._config.worker_id, files)
        self._published_at = time.monotonic()

    async def apply_preloads(self) -> None:
        """Load (or keep pinned) the active preloads of this worker's region; fetch and
        place those by source first."""
        active = [preload for preload in await self._store.models.active_preloads(time.time())
                  if preload.applies_to(self._config.region)]
        placed: list[ModelPreload] = []
        if self._sources is not None:
            placed, fresh = await self._sources.ready(active)
            if fresh:
                await self.publish()
        preloads = [preload for preload in to_keep_warm(active, placed)
                    if self.inventory.holds(preload.folder, preload.filename)]
        for preload in self.warm.needing_load(preloads):
            load_time = await self._load(preload)
            if load_time is None:
                self.warm.unpin(preload)
            else:
                log.info("preloaded %s/%s in %.2fs", preload.folder, preload.filename, load_time)

    async def _load(self, preload: ModelPreload) -> float | None:
        """Run the loader-only prompt; the loader node's time, or None if it failed."""
        prompt_id = str(uuid.uuid4())
        subscription = self._client.subscribe(prompt_id)
        try:
            await self._client.wait_connected()
            await self._client.submit(self.warm.loader_prompt(preload), prompt_id)
            return await self._loader_time(subscription.next)
        except EngineError as exc:
            log.warning("preload of %s failed: %s", preload.filename, exc)
            return None
        finally:
            self._client.unsubscribe(prompt_id)

    async def _loader_time(self, next_event: _NextEvent) -> float | None:
        """From the loader-only prompt's events: how long its loader node ran (0 when
        ComfyUI had it cached); None if the prompt failed or timed out."""
        deadline = time.monotonic() + self._config.load_timeout
        loader_started: float | None = None
        while (remaining := deadline - time.monotonic()) > 0:
            event = await next_event(remaining)
            now = time.monotonic()
            match event:
                case NodeStarted(node_id=node_id) if node_id == PRELOAD_NODE:
                    loader_started = now
                case NodeStarted() | ExecutionFinished():
                    if isinstance(event, ExecutionFinished) or loader_started is not None:
                        return 0.0 if loader_started is None else now - loader_started
                case ExecutionError() | ExecutionInterrupted() | ConnectionLost() | None:
                    return None
        return None


def keeper_for(config: WorkerConfig, store: Store, client: ComfyUIClient, warm: WarmModels,
               fetcher: ModelFetcher | None) -> ModelKeeper:
    """A worker's keeper: with its model cache (when it has one) for placed files' facts,
    preloads by source, and a rescan soon after a job placed a file."""
    placed = fetcher.placed if fetcher is not None else None
    keeper = ModelKeeper(config.model_keeper_config(), store, client,
                         ModelInventory(client, config.model_facts_file, placed), warm,
                         SourcePreloads(fetcher) if fetcher is not None else None)
    if fetcher is not None:
        fetcher.on_placed = keeper.rescan_soon
    return keeper
