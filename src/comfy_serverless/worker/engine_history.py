"""Forgets each prompt in ComfyUI's history once its attempt has ended.

ComfyUI keeps every finished prompt's history (its graph, outputs and messages), up to
10,000 by default: hundreds of megabytes in a long-lived worker, for entries this service
has already read. A completed prompt's entry exists (its outputs were just read from it),
so it goes at once. A prompt that failed, was interrupted or cancelled may still be
finishing in ComfyUI, which writes its entry only then: we wait for it to leave ComfyUI's
queue (ComfyUI is serial, so this wait costs the next prompt nothing), at most
`settle_timeout`, and drop its entry if it wrote one.
"""

from __future__ import annotations

import asyncio
import logging
import time

from comfy_serverless.engine.comfyui.client import ComfyUIClient
from comfy_serverless.errors import EngineError

__all__ = ["EngineHistory"]

log = logging.getLogger(__name__)

_SETTLE_POLL = 0.025


class EngineHistory:
    def __init__(self, client: ComfyUIClient, *, keep: bool = False,
                 settle_timeout: float = 5.0) -> None:
        """`keep` (the keep_engine_history setting) leaves every entry in place."""
        self._client = client
        self._keep = keep
        self._settle_timeout = settle_timeout

    async def forget(self, prompt_id: str, *, completed: bool) -> None:
        """Drop the prompt's history entry; never raises (an entry left is only memory)."""
        if self._keep:
            return
        try:
            if completed or await self._settled_with_entry(prompt_id):
                await self._client.delete_history([prompt_id])
        except EngineError as exc:
            log.warning("prompt %s stays in ComfyUI's history: %s", prompt_id, exc)

    async def _settled_with_entry(self, prompt_id: str) -> bool:
        """Whether the prompt, once out of ComfyUI's queue, left a history entry. The queue
        is read first: ComfyUI takes a prompt off it and writes its entry in one step."""
        deadline = time.monotonic() + self._settle_timeout
        while await self._queued(prompt_id):
            if time.monotonic() >= deadline:
                return True  # still running: delete what may be there; the rest stays
            await asyncio.sleep(_SETTLE_POLL)
        return await self._client.history(prompt_id) is not None

    async def _queued(self, prompt_id: str) -> bool:
        queue = await self._client.queue()
        entries = [*queue.get("queue_running", []), *queue.get("queue_pending", [])]
        return any(isinstance(entry, list) and len(entry) > 1 and entry[1] == prompt_id
                   for entry in entries)
