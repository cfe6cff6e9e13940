"""After ComfyUI finished a prompt: read its history and store its outputs.

Storing the outputs runs outside the event loop of the prompt and may be long (moving
gigabytes of video to S3 may outlast the lease), so the lease is renewed meanwhile and the
rescuer never takes back an execution whose outputs are still being stored. What it
returns is the outputs, or why there are none; the executor decides the outcome.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from comfy_serverless.engine.comfyui.client import ComfyUIClient
from comfy_serverless.errors import EngineError, StorageError, StoreError
from comfy_serverless.store.records import ExecutionRecord, Lease, OutputRecord
from comfy_serverless.store.store import Store
from comfy_serverless.worker.engine_watch import EngineLost
from comfy_serverless.worker.failures import Failure
from comfy_serverless.worker.outputs import OutputCollector

__all__ = ["OutputCompletion"]

log = logging.getLogger(__name__)


class OutputCompletion:
    def __init__(self, store: Store, client: ComfyUIClient, collector: OutputCollector, *,
                 heartbeat_interval: float, lease_seconds: float) -> None:
        self._store = store
        self._client = client
        self._collector = collector
        self._heartbeat_interval = heartbeat_interval
        self._lease_seconds = lease_seconds

    async def collect(self, execution: ExecutionRecord, prompt_id: str,
                      streamed: dict[str, object] | None = None
                      ) -> list[OutputRecord] | Failure | EngineLost:
        """The stored outputs of the finished prompt, or the failure that replaces them.
        `streamed`: its outputs as its WebSocket events carried them, complete; None reads
        them from its history (after a reconnect, the source of truth)."""
        try:
            outputs = streamed if streamed is not None else await self._history_outputs(
                prompt_id)
            if not isinstance(outputs, dict):
                return outputs
            async with self._lease_kept(execution.lease):
                return await self._collector.collect(execution, outputs)
        except StorageError as exc:
            return Failure(
                error_type="OUTPUT_STORAGE_FAILED", retryable=True,
                message=f"The outputs could not be stored: {exc}")
        except EngineError as exc:
            return EngineLost(f"ComfyUI's outputs could not be read: {exc}")

    async def _history_outputs(self, prompt_id: str
                               ) -> dict[str, object] | Failure | EngineLost:
        history = await self._client.history(prompt_id)
        if history is None:
            return EngineLost("ComfyUI has no history for the prompt")
        status = history.get("status") or {}
        if status.get("status_str") == "error":
            return Failure(
                error_type="WORKFLOW_EXECUTION_FAILED",
                message="ComfyUI reported an error for the prompt", retryable=False)
        outputs: dict[str, object] = history.get("outputs") or {}
        return outputs

    @contextlib.asynccontextmanager
    async def _lease_kept(self, lease: Lease) -> AsyncIterator[None]:
        """Renew the lease every heartbeat_interval while the body runs."""
        async def renew() -> None:
            while True:
                await asyncio.sleep(self._heartbeat_interval)
                try:
                    await self._store.claims.renew_lease(lease, self._lease_seconds)
                except StoreError as exc:
                    log.warning("lease of %s not renewed: %s", lease.execution_id, exc)

        renewer = asyncio.create_task(renew(), name=f"lease-{lease.execution_id}")
        try:
            yield
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
