"""The event feed of one execution, as the SSE route serves it (docs/how-to/stream.md).

Events come from the store's numbered stream rows (migration 0015), so their ids are the
same on every API replica and a reader that resumes after id n misses nothing and repeats
nothing. Outputs and previews are rendered when read, with fresh signed URLs. The feed ends
with its `end` event: rows written after it (a log entry a worker adds after a cancel) are
never served.

`StreamHub` is one per API process: it wakes the feeds of an execution when PostgreSQL
notifies new rows (any replica, any worker wrote them) and counts each key's open streams.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any

from comfy_serverless.executions.bodies import output_body
from comfy_serverless.storage.base import OutputStorage
from comfy_serverless.store.events import StreamRow
from comfy_serverless.store.store import Store
from comfy_serverless.timefmt import utc_iso

__all__ = ["END", "ExecutionFeed", "FeedEvent", "StreamHub", "StreamLimitReached"]

END = "end"


@dataclass(frozen=True)
class FeedEvent:
    id: int
    event: str
    data: dict[str, Any]


class StreamLimitReached(Exception):
    """The key already holds as many open streams as one API process allows it."""

    def __init__(self, open_streams: int, limit: int) -> None:
        super().__init__(f"{open_streams} streams open, limit {limit}")
        self.open_streams = open_streams
        self.limit = limit


class ExecutionFeed:
    def __init__(self, store: Store, storage: OutputStorage, execution_id: str, *,
                 base_url: str, signed_url_ttl: int) -> None:
        self._store = store
        self._storage = storage
        self._execution_id = execution_id
        self._base_url = base_url
        self._signed_url_ttl = signed_url_ttl

    async def ended_by(self, last_event_id: int) -> bool:
        """True when the reader already had the `end` event: nothing is left to send."""
        end = await self._store.stream.end_seq(self._execution_id)
        return end is not None and last_event_id >= end

    async def after(self, last_event_id: int) -> list[FeedEvent]:
        """The events after `last_event_id`, in order, up to and including `end`."""
        events: list[FeedEvent] = []
        for row in await self._store.stream.after(self._execution_id, last_event_id):
            events.append(await self._render(row))
            if row.kind == END:
                break
        return events

    async def _render(self, row: StreamRow) -> FeedEvent:
        data: dict[str, Any] = {"execution_id": self._execution_id,
                                "timestamp": utc_iso(row.at)}
        if row.kind in ("output", "preview"):
            data["output"] = await self._output(str(row.data["output_id"]))
        elif row.kind == "log":
            data.update(row.data, timestamp=utc_iso(float(row.data.pop("at"))))
        else:
            data.update(row.data)
        if row.kind == END:
            data["results_url"] = f"/v1/workflows/{self._execution_id}/results"
        return FeedEvent(row.seq, row.kind, data)

    async def _output(self, output_id: str) -> dict[str, Any] | None:
        output = await self._store.stream.output(self._execution_id, output_id)
        if output is None:
            return None
        expires = int(time.time()) + self._signed_url_ttl
        return await output_body(output, self._storage, base_url=self._base_url,
                                 expires=expires, inline=False)


class StreamHub:
    """Wake-ups for the feeds of this process, and the per-key count of open streams."""

    def __init__(self, store: Store, max_streams_per_key: int) -> None:
        self._store = store
        self._max_streams_per_key = max_streams_per_key
        self._open: Counter[str] = Counter()
        self._waiters: dict[str, set[asyncio.Event]] = {}

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Listen for new rows from every process while the block runs."""
        async with self._store.stream.listen(self.wake):
            yield

    def wake(self, execution_id: str) -> None:
        for event in self._waiters.get(execution_id, ()):
            event.set()

    def take_slot(self, key_id: str) -> None:
        """Count one more open stream for the key (or StreamLimitReached); the stream
        gives it back with `release_slot` when it closes."""
        if self._open[key_id] >= self._max_streams_per_key:
            raise StreamLimitReached(self._open[key_id], self._max_streams_per_key)
        self._open[key_id] += 1

    def release_slot(self, key_id: str) -> None:
        self._open[key_id] -= 1
        if self._open[key_id] <= 0:
            del self._open[key_id]

    @contextmanager
    def watch(self, execution_id: str) -> Iterator[asyncio.Event]:
        """An event set whenever new rows are notified for the execution, for the whole
        block: a notification between two reads is never lost."""
        event = asyncio.Event()
        self._waiters.setdefault(execution_id, set()).add(event)
        try:
            yield event
        finally:
            waiters = self._waiters[execution_id]
            waiters.discard(event)
            if not waiters:
                del self._waiters[execution_id]
