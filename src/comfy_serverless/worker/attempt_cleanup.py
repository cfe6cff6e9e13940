"""What an attempt leaves behind once it ends, whatever ends it.

Nothing of it stays in ComfyUI's folders or its history, and the execution's staged input
images are discarded once no attempt will ever need them again. The one place that empties
them.
"""

from __future__ import annotations

from typing import Any

from comfy_serverless.engine.comfyui.client import WrittenFile
from comfy_serverless.store.records import ExecutionRecord
from comfy_serverless.store.store import Store
from comfy_serverless.worker.engine_files import EngineFiles
from comfy_serverless.worker.engine_history import EngineHistory
from comfy_serverless.worker.execution_context import Outcome
from comfy_serverless.worker.input_upload import InputUploader
from comfy_serverless.worker.output_kinds import files_in_history

__all__ = ["AttemptCleanup"]


class AttemptCleanup:
    def __init__(self, store: Store, engine_files: EngineFiles, history: EngineHistory,
                 inputs: InputUploader | None) -> None:
        self._store = store
        self._engine_files = engine_files
        self._history = history
        self._inputs = inputs

    def identify_reported(self, node_id: str, output: dict[str, Any]) -> list[WrittenFile]:
        """The files a node just reported, each with its identity (engine_files.identify)."""
        return self._engine_files.identify(files_in_history({node_id: output}))

    async def leave_engine_folders(self, execution: ExecutionRecord, prompt_id: str,
                                   reported: list[WrittenFile]) -> None:
        """The files the attempt's nodes wrote, reported or not (a local collection moved
        the reported ones out already), and its uploaded input images."""
        await self._engine_files.remove_written(prompt_id, reported)
        if self._inputs is not None:
            await self._inputs.remove_from_engine(execution)

    async def after(self, execution: ExecutionRecord, prompt_id: str, outcome: Outcome
                    ) -> None:
        """Forget the prompt in ComfyUI's history once no attempt will look it up again
        (the outputs are stored, or it failed, or it will run again under a new prompt id),
        and discard the staged inputs once the execution has ended for good."""
        ended = await self._ended_for_good(execution, outcome)
        if ended or outcome == "requeued":
            await self._history.forget(prompt_id, completed=outcome == "completed")
        if self._inputs is not None and ended:
            await self._inputs.discard(execution)

    async def _ended_for_good(self, execution: ExecutionRecord, outcome: Outcome) -> bool:
        """Whether no attempt will ever need the execution's staged inputs again: it
        completed or failed here, or it was cancelled (not merely taken back by the rescuer,
        which may run it again)."""
        if outcome in ("completed", "failed"):
            return True
        if outcome != "cancelled":
            return False
        current = await self._store.executions.execution(execution.id)
        return current is not None and current.status == "cancelled"
