"""Hands one attempt's prompt to ComfyUI.

What is submitted is the user's workflow, its model sources fetched and replaced by their
placed file names (model_fetch.py), plus what the worker adds (its pinned model
loaders, prompt_for), with its output nodes marked fresh so that ComfyUI runs them again
rather than answering from a cached run whose files were moved out (fresh_outputs.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from comfy_serverless.engine.comfyui.client import ComfyUIClient
from comfy_serverless.engine.comfyui.fresh_outputs import with_fresh_outputs, worker_additions
from comfy_serverless.worker.execution_context import ExecutionContext
from comfy_serverless.worker.input_upload import InputUploader
from comfy_serverless.worker.model_fetch import ModelFetcher

__all__ = ["PromptSubmission"]


class PromptSubmission:
    def __init__(self, client: ComfyUIClient, inputs: InputUploader | None,
                 prompt_for: Callable[[dict[str, Any]], dict[str, Any]],
                 models: ModelFetcher | None = None) -> None:
        self._client = client
        self._inputs = inputs
        self._prompt_for = prompt_for
        self._models = models

    async def submit(self, context: ExecutionContext, output_classes: frozenset[str]) -> None:
        """Fetch its model sources, upload its input images and queue its prompt. Raises
        the model_sources errors (a source cannot be had), StorageError (a staged input
        cannot be read) and the engine's errors."""
        execution, tuning, prompt_id = context.execution, context.tuning, context.prompt_id
        workflow = execution.workflow
        if self._models is not None:
            workflow = await self._models.prepare(context)
            context.tracker.submitting(workflow)
        # Events sent before our WebSocket is up would be lost: never submit without it.
        await self._client.wait_connected()
        if self._inputs is not None:
            await self._inputs.upload(execution)
        prompt = with_fresh_outputs(self._prompt_for(workflow), output_classes, prompt_id,
                                    tuning.cache_mark)
        await self._client.submit(prompt, prompt_id, extra_data={
            **tuning.extra_data(), **worker_additions(prompt, workflow)})
