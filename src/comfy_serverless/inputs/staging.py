"""Input images given as https URLs or base64 data, staged at submit time.

Decision (documented in docs/how-to/outputs.md): the API fetches and checks each image when
the workflow is submitted, so a bad image is a 400 at once, not a failed execution later.
The checked file is put in the execution's storage (local disk, or its S3 bucket, which
every worker of a fleet can read) and the input is rewritten to the name that the worker
will give it in its ComfyUI's input folder. The worker uploads it (POST /upload/image)
before it submits the prompt.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import itertools
from dataclasses import dataclass, replace
from pathlib import Path

from comfy_serverless.inputs.fetcher import (
    FetchedImage,
    FetchPolicy,
    ImageRefused,
    fetch_image,
    spool_image,
)
from comfy_serverless.inputs.images import ImageInput, image_inputs, name_problem
from comfy_serverless.storage.base import OutputStorage, StoredLocation, delete_quietly
from comfy_serverless.storage.destinations import Destination
from comfy_serverless.store.options import StagedInputOptions
from comfy_serverless.store.records import ExecutionRecord, NewExecution
from comfy_serverless.validation.catalog import NodeCatalog
from comfy_serverless.validation.findings import ValidationProblem, workflow_invalid
from comfy_serverless.validation.workflow import copy_graph

__all__ = ["STAGED_SUBFOLDER", "InputStager", "StagedInput", "discard_staged"]


# Staged images go to this subfolder of each worker's ComfyUI input folder.
STAGED_SUBFOLDER = "comfy-serverless"
_CONTENT_TYPES = {"png": "image/png", "jpg": "image/jpeg", "webp": "image/webp"}


@dataclass(frozen=True)
class StagedInput:
    node_id: str
    input: str
    filename: str
    location: StoredLocation

    @property
    def engine_value(self) -> str:
        """The input's value in the prompt: the file in ComfyUI's input folder."""
        return f"{STAGED_SUBFOLDER}/{self.filename}"

    def as_stored(self) -> StagedInputOptions:
        """As the execution's options keep it."""
        return StagedInputOptions(self.node_id, self.input, self.filename,
                                  self.location.provider, self.location.bucket,
                                  self.location.key)

    @classmethod
    def from_stored(cls, item: StagedInputOptions) -> StagedInput:
        return cls(item.node_id, item.input, item.filename,
                   StoredLocation(item.provider, item.key, item.bucket))


class InputStager:
    def __init__(self, policy: FetchPolicy, storage: OutputStorage, spool_dir: Path) -> None:
        self._policy = policy
        self._storage = storage
        self._spool_dir = spool_dir
        spool_dir.mkdir(parents=True, exist_ok=True)

    async def stage(self, execution: NewExecution, catalog: NodeCatalog | None
                    ) -> NewExecution:
        """The execution with its URL and base64 images staged; a 400 for a bad one.
        Images are fetched in parallel (at most `concurrency` at once), all within one
        overall deadline; when one is refused, the others are stopped and none is kept."""
        destination = Destination.from_stored(execution.id, execution.options.output.storage)
        graph = copy_graph(execution.workflow)
        images = list(image_inputs(graph, catalog))
        outcomes = await self._stage_all(images, destination, execution.id)
        staged = [item for item in outcomes if isinstance(item, StagedInput)]
        problems = [_problem(image, str(outcome)) for image, outcome in zip(
            images, outcomes, strict=True) if isinstance(outcome, ImageRefused)]
        if problems:
            await delete_quietly(self._storage, (item.location for item in staged),
                                 execution.id)
            raise workflow_invalid(problems)
        if not staged:
            return execution
        for item in staged:
            graph[item.node_id]["inputs"][item.input] = item.engine_value
        options = replace(execution.options,
                          staged_inputs=tuple(item.as_stored() for item in staged))
        return replace(execution, workflow=graph, options=options)

    async def _stage_all(self, images: list[ImageInput], destination: Destination,
                         execution_id: str) -> list[StagedInput | ImageRefused | None]:
        """Stage every image at once (at most `concurrency` fetches running): the first
        refusal, or the deadline, stops the fetches still running (their spool files go)."""
        gate = asyncio.Semaphore(self._policy.concurrency)

        async def one(index: int, image: ImageInput) -> StagedInput | None:
            async with gate:
                return await self._stage_one(image, destination, execution_id, index)

        numbers = itertools.count()  # staged files are numbered in the workflow's order
        tasks = [asyncio.create_task(one(next(numbers) if image.kind != "name" else -1, image))
                 for image in images]
        if not tasks:
            return []
        try:
            await asyncio.wait(tasks, timeout=self._policy.deadline,
                               return_when=asyncio.FIRST_EXCEPTION)
        finally:
            for task in tasks:
                task.cancel()  # nothing for those already done
            await asyncio.gather(*tasks, return_exceptions=True)
        refused = any(not task.cancelled() and task.exception() for task in tasks)
        return [self._outcome(task, refused) for task in tasks]

    def _outcome(self, task: asyncio.Task[StagedInput | None], refused: bool
                 ) -> StagedInput | ImageRefused | None:
        if task.cancelled():  # stopped by another image's refusal, or by the deadline
            return None if refused else ImageRefused(
                "the images were not all fetched within the overall deadline of "
                f"{self._policy.deadline:g}s (input_fetch_deadline)")
        error = task.exception()
        if isinstance(error, ImageRefused):
            return error
        if error is not None:
            raise error
        return task.result()

    async def _stage_one(self, image: ImageInput, destination: Destination,
                         execution_id: str, index: int) -> StagedInput | None:
        if image.kind == "name":
            if problem := name_problem(image.value):
                raise ImageRefused(f"the file name is refused: {problem}")
            return None
        fetched = await self._obtain(image)
        filename = f"{execution_id}_{index}.{fetched.format}"
        location = destination.location(f"inputs/{filename}")
        stored = await self._storage.put_file(location, fetched.path,
                                              _CONTENT_TYPES[fetched.format])
        return StagedInput(image.node_id, image.name, filename, stored)

    async def _obtain(self, image: ImageInput) -> FetchedImage:
        if image.kind == "url":
            return await fetch_image(image.value, self._policy, self._spool_dir)
        data = _decoded(image.value, self._policy.max_bytes)
        return await spool_image(data, self._spool_dir, self._policy)

    async def discard(self, execution: NewExecution | ExecutionRecord) -> None:
        """Best effort: delete what stage() stored for an execution that will not run (not
        admitted, or cancelled while queued)."""
        await discard_staged(self._storage, execution)


async def discard_staged(storage: OutputStorage, execution: NewExecution | ExecutionRecord
                         ) -> None:
    """Delete an execution's staged input copies, best effort (see delete_quietly)."""
    items = execution.options.staged_inputs
    await delete_quietly(storage, (StagedInput.from_stored(item).location for item in items),
                         execution.id)


def _decoded(data_uri: str, max_bytes: int) -> bytes:
    header, _, payload = data_uri.partition(",")
    if not header.lower().endswith(";base64"):
        raise ImageRefused("a data: URI must carry base64 data")
    if len(payload) * 3 // 4 > max_bytes:
        raise ImageRefused(f"the image is larger than {max_bytes} bytes")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ImageRefused("the data is not valid base64") from exc


def _problem(image: ImageInput, reason: str) -> ValidationProblem:
    return ValidationProblem(
        image.node_id, f"Input image '{image.name}' refused: {reason}",
        "Give a public https URL or base64 data (data:image/png;base64,…) of a png, jpg or "
        "webp image within the size limit, or the name of a file in the input folder")
