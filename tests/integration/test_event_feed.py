"""The SSE frames of one execution, against a real store (SQLite and PostgreSQL): a quiet
stream sends heartbeat comments, a change wakes it (NOTIFY on PostgreSQL, so even with a
poll of minutes), and the stream ends with its `end` event."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from comfy_serverless.api.routes.events import _frames
from comfy_serverless.executions.events import ExecutionFeed, StreamHub, StreamLimitReached
from comfy_serverless.storage.local import LocalStorage
from comfy_serverless.storage.signing import UrlSigner
from comfy_serverless.store.store import Store
from comfy_serverless.worker.wakeups import Wakeups
from workloads.rows import add_execution, add_key


async def test_a_quiet_stream_beats_then_a_cancel_ends_it(store: Store, tmp_path: Path) -> None:
    key = await add_key(store)
    execution_id = await add_execution(store, key)
    feed = ExecutionFeed(store, LocalStorage(tmp_path, UrlSigner("s" * 32)), execution_id,
                         base_url="http://127.0.0.1", signed_url_ttl=60)
    hub = StreamHub(store, max_streams_per_key=1)
    # On PostgreSQL only NOTIFY can wake it in time; SQLite must poll.
    poll = 300.0 if store.dialect == "postgres" else 0.05
    seen: list[str] = []
    async with hub.running():
        frames = _frames(feed, hub, Wakeups(), execution_id, 0, heartbeat=0.3, poll=poll)
        async for frame in frames:
            seen.append(frame)
            if frame == ": heartbeat\n\n":
                break
        cancelled_at = time.monotonic()
        await store.executions.cancel(execution_id, key.id, "user_requested", time.time())
        rest = [frame async for frame in frames]
        took = time.monotonic() - cancelled_at
    assert seen[0].startswith("retry: ")
    assert sum("event: status" in frame for frame in seen) == 1  # queued, then quiet
    assert ["event: end" in frame for frame in rest][-1]
    assert any('"status":"cancelled"' in frame for frame in rest)
    assert took < 5, took
    assert not hub._waiters


async def test_the_hub_caps_open_streams_per_key(store: Store) -> None:
    hub = StreamHub(store, max_streams_per_key=2)
    hub.take_slot("k1")
    hub.take_slot("k1")
    hub.take_slot("k2")
    with pytest.raises(StreamLimitReached) as refused:
        hub.take_slot("k1")
    assert (refused.value.open_streams, refused.value.limit) == (2, 2)
    hub.release_slot("k1")
    hub.take_slot("k1")
