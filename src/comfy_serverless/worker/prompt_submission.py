"""Hands one attempt's prompt to ComfyUI.

What is submitted is the user's workflow plus what the worker adds (its pinned model
loaders, prompt_for), with its output nodes marked fresh so that ComfyUI runs them again
rather than answering from a cached run whose files were moved out (fresh_outputs.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from comfy_serverless.engine.comfyui.client import ComfyUIClient
from comfy_serverless.engine.comfyui.fresh_outputs import with_fresh_outputs, worker_additions
from comfy_serverless.engine.comfyui.tuning import EngineTuning
from comfy_serverless.store.records import ExecutionRecord
from comfy_serverless.worker.input_upload import InputUploader

__all__ = ["PromptSubmission"]


class PromptSubmission:
    def __init__(self, client: ComfyUIClient, inputs: InputUploader | None,
                 prompt_for: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        self._client = client
        self._inputs = inputs
        self._prompt_for = prompt_for

    async def submit(self, execution: ExecutionRecord, prompt_id: str, tuning: EngineTuning,
                     output_classes: frozenset[str]) -> None:
        """Upload its input images and queue its prompt. Raises StorageError (a staged
        input cannot be read) and the engine's errors."""
        # Events sent before our WebSocket is up would be lost: never submit without it.
        await self._client.wait_connected()
        if self._inputs is not None:
            await self._inputs.upload(execution)
        workflow = execution.workflow
        prompt = with_fresh_outputs(self._prompt_for(workflow), output_classes, prompt_id,
                                    tuning.cache_mark)
        await self._client.submit(prompt, prompt_id, extra_data={
            **tuning.extra_data(), **worker_additions(prompt, workflow)})
