"""In-process wake-ups between the API and an embedded worker: asyncio events that say new
work is queued, an execution was cancelled, or an execution ended.

They only make things faster: a worker or API replica on another machine learns the same
facts from the store (a jittered poll for new work, a short poll of an execution's state
for cancels and for the end of an execution).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

__all__ = ["Wakeups"]


class _Watches:
    """One asyncio.Event per watched execution id, shared by all who watch it."""

    def __init__(self) -> None:
        self._events: dict[str, tuple[asyncio.Event, int]] = {}

    @contextmanager
    def watch(self, execution_id: str) -> Iterator[asyncio.Event]:
        event, watchers = self._events.get(execution_id, (asyncio.Event(), 0))
        self._events[execution_id] = (event, watchers + 1)
        try:
            yield event
        finally:
            event, watchers = self._events[execution_id]
            if watchers <= 1:
                del self._events[execution_id]
            else:
                self._events[execution_id] = (event, watchers - 1)

    def fire(self, execution_id: str) -> None:
        entry = self._events.get(execution_id)
        if entry is not None:
            entry[0].set()


class Wakeups:
    """The asyncio events one process shares between its API and its embedded worker."""

    def __init__(self) -> None:
        self._work_available = asyncio.Event()
        self._cancels = _Watches()
        self._finishes = _Watches()

    def work_available(self) -> None:
        self._work_available.set()

    async def wait_for_work(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(self._work_available.wait(), timeout)
        except TimeoutError:
            return
        finally:
            self._work_available.clear()

    def watch_cancel(self, execution_id: str) -> AbstractContextManager[asyncio.Event]:
        """Set when the API cancels this execution."""
        return self._cancels.watch(execution_id)

    def cancelled(self, execution_id: str) -> None:
        self._cancels.fire(execution_id)
        self._finishes.fire(execution_id)

    def watch_finish(self, execution_id: str) -> AbstractContextManager[asyncio.Event]:
        """Set when this execution reaches an end (completed, failed or cancelled)."""
        return self._finishes.watch(execution_id)

    def finished(self, execution_id: str) -> None:
        self._finishes.fire(execution_id)
