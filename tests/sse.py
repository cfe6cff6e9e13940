"""A test's Server-Sent Events reader: frames as they arrive over an httpx stream."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class Frame:
    id: int | None = None
    event: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    comments: list[str] = field(default_factory=list)


async def frames(response: httpx.Response) -> AsyncIterator[Frame]:
    """Each blank-line-separated block as a Frame (comments kept, for heartbeats)."""
    frame = Frame()
    async for line in response.aiter_lines():
        if not line:
            yield frame
            frame = Frame()
        elif line.startswith(":"):
            frame.comments.append(line[1:].strip())
        else:
            name, _, value = line.partition(": ")
            if name == "id":
                frame.id = int(value)
            elif name == "event":
                frame.event = value
            elif name == "data":
                frame.data = json.loads(value)


async def read_events(api: httpx.AsyncClient, execution_id: str, *, last_event_id: int = 0,
                      stop_when: str | None = None) -> list[Frame]:
    """The events of one connection, until `end` (the server closes) or, when `stop_when`
    is given, until the first event of that kind, after which the client hangs up."""
    headers = {"Last-Event-ID": str(last_event_id)} if last_event_id else {}
    events: list[Frame] = []
    async with api.stream("GET", f"/v1/workflows/{execution_id}/events",
                          headers=headers) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        async for frame in frames(response):
            if frame.id is None:
                continue
            events.append(frame)
            if frame.event == stop_when:
                break
    return events
