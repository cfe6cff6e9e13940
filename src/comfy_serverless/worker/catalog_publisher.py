"""Publishes its ComfyUI's node catalog (/object_info), which the API validates workflows
against, with the environment its engine runs (environment_watch.py), and tells the worker
when it may claim work.

Work is claimed only once the catalog has named ComfyUI's output nodes: without them a
repeated workflow would be answered from ComfyUI's cache with files already moved out
(fresh_outputs.py). Until then, each claim reads it again, backing off.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from comfy_serverless.engine.comfyui.client import ComfyUIClient
from comfy_serverless.engine.comfyui.fresh_outputs import output_classes
from comfy_serverless.errors import EngineError
from comfy_serverless.store.store import Store
from comfy_serverless.webhooks.system_events import model_changes
from comfy_serverless.worker.environment_watch import EnvironmentWatch

__all__ = ["CatalogPublisher"]

log = logging.getLogger(__name__)

# While ComfyUI's catalog cannot be read, it is read again at claims, at most this often.
_FIRST_PAUSE = 0.5
_LONGEST_PAUSE = 30.0


class CatalogPublisher:
    def __init__(self, store: Store, client: ComfyUIClient, worker_id: str, *,
                 webhook_max_retries: int,
                 on_output_classes: Callable[[frozenset[str]], None],
                 environment: EnvironmentWatch | None = None) -> None:
        """`on_output_classes` hears the output node classes each time the catalog is read."""
        self._environment = environment or EnvironmentWatch(None)
        self._store = store
        self._client = client
        self._worker_id = worker_id
        self._webhook_max_retries = webhook_max_retries
        self._on_output_classes = on_output_classes
        self.published_at = 0.0
        self._read = False
        self._retry_at = 0.0
        self._pause = _FIRST_PAUSE

    async def ready_for_claims(self) -> bool:
        """Whether ComfyUI's output nodes are known; if not, read the catalog again (when
        its back-off allows)."""
        now = time.monotonic()
        if not self._read and now >= self._retry_at:
            await self.publish()
            if not self._read:
                self._retry_at = now + self._pause
                self._pause = min(self._pause * 2, _LONGEST_PAUSE)
        return self._read

    async def publish(self) -> None:
        """Read /object_info and publish it; announce the models it gained or lost."""
        try:
            object_info = await self._client.object_info()
        except EngineError as exc:
            self.published_at = time.monotonic()  # try again at the next refresh
            log.warning("cannot read ComfyUI's node catalog: %s", exc)
            return
        self._on_output_classes(output_classes(object_info))
        self._read, self._pause = True, _FIRST_PAUSE
        text = json.dumps(object_info, sort_keys=True, separators=(",", ":"))
        digest, previous = await self._store.workers.publish_catalog(
            self._worker_id, text, self._environment.published())
        self.published_at = time.monotonic()
        if previous is not None and previous != digest:
            await self._announce_model_changes(previous, object_info)

    async def _announce_model_changes(self, previous: str, object_info: dict[str, Any]) -> None:
        before = await self._store.workers.catalog(previous)
        changes = model_changes(before or {}, object_info)
        if changes["added"] or changes["removed"]:
            await self._store.webhooks.broadcast(
                "model.updated", {"worker_id": self._worker_id, **changes},
                self._webhook_max_retries)
