"""`GET /v1/workflows/{execution_id}/events`: the execution's events as Server-Sent Events
(docs/how-to/stream.md). One request for the rate limit, however long it stays open."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Annotated

from fastapi import APIRouter, Header, Request
from fastapi.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from comfy_serverless.api.bodies.service import EVENT_STREAM
from comfy_serverless.api.deps import CurrentKey, ServicesDep
from comfy_serverless.api.urls import public_base_url
from comfy_serverless.errors import ApiError, ExecutionNotFound, RequestInvalid
from comfy_serverless.executions.events import (
    END,
    ExecutionFeed,
    FeedEvent,
    StreamHub,
    StreamLimitReached,
)
from comfy_serverless.worker.wakeups import Wakeups

__all__ = ["StreamLimitExceeded", "router"]

router = APIRouter(prefix="/v1/workflows", tags=["workflows"])

_MAX_EVENT_ID = 2**31 - 1


class StreamLimitExceeded(ApiError):
    status_code = 429
    error_code = "STREAM_LIMIT_EXCEEDED"


class _EventStreamResponse(StreamingResponse):
    """Gives the stream's slot back however the response ends (even before its body
    started, when the client left at once)."""

    def __init__(self, frames: AsyncIterator[str], on_close: Callable[[], None]) -> None:
        super().__init__(frames, media_type="text/event-stream", headers={
            "Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._on_close()


def _last_event_id(header: str | None) -> int:
    if header is None or not header.strip():
        return 0
    text = header.strip()
    if not text.isdigit() or int(text) > _MAX_EVENT_ID:
        raise RequestInvalid(
            "Last-Event-ID must be the id of an event of this stream (a whole number)",
            {"last_event_id": header[:100]})
    return int(text)


def _frame(event: FeedEvent) -> str:
    data = json.dumps(event.data, separators=(",", ":"))
    return f"id: {event.id}\nevent: {event.event}\ndata: {data}\n\n"


@router.get("/{execution_id}/events", response_class=StreamingResponse, responses=EVENT_STREAM)
async def events(
    request: Request, execution_id: str, key: CurrentKey, services: ServicesDep,
    last_event_id: Annotated[str | None, Header()] = None,
) -> Response:
    after = _last_event_id(last_event_id)
    if await services.store.executions.execution_for_key(execution_id, key.id) is None:
        raise ExecutionNotFound(execution_id)
    settings = services.settings
    feed = ExecutionFeed(services.store, services.storage_router, execution_id,
                         base_url=public_base_url(request.scope),
                         signed_url_ttl=settings.signed_url_ttl)
    if await feed.ended_by(after):
        return Response(status_code=204)  # an EventSource stops reconnecting on 204
    hub: StreamHub = request.app.state.stream_hub
    try:
        hub.take_slot(key.id)
    except StreamLimitReached as exc:
        raise StreamLimitExceeded(
            f"This key already has {exc.open_streams} open event streams",
            {"open_streams": exc.open_streams, "max_streams": exc.limit, "retry_after": 5},
            headers={"Retry-After": "5"}) from exc
    frames = _frames(feed, hub, services.wakeups, execution_id, after,
                     heartbeat=settings.stream_heartbeat_interval,
                     poll=settings.stream_poll_interval)
    return _EventStreamResponse(frames, lambda: hub.release_slot(key.id))


async def _frames(feed: ExecutionFeed, hub: StreamHub, wakeups: Wakeups,
                  execution_id: str, after: int, *, heartbeat: float, poll: float
                  ) -> AsyncIterator[str]:
    """Events as they are stored; a heartbeat comment when none came for `heartbeat` s.
    Woken by NOTIFY (PostgreSQL), by the embedded worker's end of the execution, or by the
    poll."""
    yield f"retry: 1000\n: stream of {execution_id}\n\n"
    quiet_since = time.monotonic()
    with hub.watch(execution_id) as notified, wakeups.watch_finish(execution_id) as finished:
        while True:
            notified.clear()
            for event in await feed.after(after):
                yield _frame(event)
                after = event.id
                quiet_since = time.monotonic()
                if event.event == END:
                    return
            if time.monotonic() - quiet_since >= heartbeat:
                yield ": heartbeat\n\n"
                quiet_since = time.monotonic()
            await _first_of((notified, finished), min(poll, heartbeat))


async def _first_of(events: tuple[asyncio.Event, ...], timeout: float) -> None:
    waits = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()
