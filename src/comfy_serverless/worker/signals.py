"""In-process signals between the API and an embedded worker.

They only make things faster: a worker on another machine learns the same facts by polling
the store (a jittered poll for new work, a short poll of its execution's state for cancels).
"""

from __future__ import annotations

import asyncio

__all__ = ["WorkerSignals"]


class WorkerSignals:
    def __init__(self) -> None:
        self._work_available = asyncio.Event()
        self._cancelled: dict[str, asyncio.Event] = {}

    def work_available(self) -> None:
        self._work_available.set()

    async def wait_for_work(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(self._work_available.wait(), timeout)
        except TimeoutError:
            return
        finally:
            self._work_available.clear()

    def watch_cancel(self, execution_id: str) -> asyncio.Event:
        return self._cancelled.setdefault(execution_id, asyncio.Event())

    def forget(self, execution_id: str) -> None:
        self._cancelled.pop(execution_id, None)

    def cancelled(self, execution_id: str) -> None:
        event = self._cancelled.get(execution_id)
        if event is not None:
            event.set()
