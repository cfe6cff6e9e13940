"""The shape of every periodic service (rescuer, capacity monitor, webhook dispatcher):
`run_once()` does one pass and is what tests call; `start()`/`stop()` run it in a loop.
A pass that raises is logged (a StoreError briefly, anything else with its traceback) and the
loop goes on after the interval: only `stop()` ends it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import ABC, abstractmethod

from comfy_serverless.errors import StoreError

__all__ = ["BackgroundService", "wait_at_most"]

log = logging.getLogger(__name__)


class BackgroundService(ABC):
    name = "background-service"

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    @abstractmethod
    async def run_once(self) -> object:
        """One pass. A truthy result means "there may be more work: go again at once"."""

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.close()

    async def close(self) -> None:
        """Release what the service holds (after its loop has stopped)."""
        return None

    async def _loop(self) -> None:
        while True:
            try:
                busy = await self.run_once()
            except StoreError as exc:
                log.warning("%s pass failed: %s", self.name, exc)
                busy = False
            except Exception:  # a bug or a foreign error must not end the loop for good
                log.exception("%s pass failed unexpectedly", self.name)
                busy = False
            if not busy:
                await asyncio.sleep(self.interval)


async def wait_at_most(task: asyncio.Task[None], seconds: float) -> None:
    """Wait for `task` to end, at most `seconds`; the task itself is never cancelled."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(task), seconds)
