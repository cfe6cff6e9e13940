"""GET /v1/workflows/{id}/events on the real engine: a client that hangs up mid-run and
comes back with Last-Event-ID gets every event exactly once, in order; on PostgreSQL the
stream may be served by an API replica that neither took the submit nor runs the job."""

from __future__ import annotations

import random
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from comfy_serverless.engine.comfyui.installer import EngineLayout
from comfy_serverless.testing import LocalService
from tests.conftest import fresh_postgres_schema
from tests.helpers import submit
from tests.sse import Frame, read_events
from workloads.workflows import tiny_sd15


async def _resumed_run(submitter: httpx.AsyncClient, reader: httpx.AsyncClient
                       ) -> list[Frame]:
    """Submit a sampler job, read its stream until a sampler step, hang up, resume."""
    execution_id = await submit(submitter, tiny_sd15(random.randrange(2**31), steps=12))
    first = await read_events(reader, execution_id, stop_when="progress")
    assert first[-1].event == "progress"
    rest = await read_events(reader, execution_id, last_event_id=first[-1].id or 0)
    return first + rest


def _assert_whole_stream(events: list[Frame]) -> None:
    assert [event.id for event in events] == list(range(1, len(events) + 1))
    kinds = [event.event for event in events]
    assert kinds[-2:] == ["status", "end"]
    assert events[-1].data["status"] == "completed"
    assert kinds.count("end") == 1
    assert {"log", "progress", "output"} <= set(kinds)
    steps = [event.data["current_step"] for event in events
             if event.event == "progress" and event.data["current_node_id"] == "3"
             and event.data["current_step"] is not None]
    assert steps
    assert steps == sorted(steps)
    assert events[-1].data["results_url"]
    statuses = [event.data["status"] for event in events if event.event == "status"]
    assert statuses == ["queued", "processing", "completed"]
    output = next(event for event in events if event.event == "output").data["output"]
    assert output["node_id"] == "9"
    assert output["storage"]["url"]


async def test_a_client_that_hangs_up_mid_run_resumes_with_nothing_lost_or_repeated(
    api: httpx.AsyncClient,
) -> None:
    events = await _resumed_run(api, api)
    _assert_whole_stream(events)
    png = await api.get(next(e for e in events if e.event == "output")
                        .data["output"]["storage"]["url"])
    assert png.status_code == 200
    assert png.content.startswith(b"\x89PNG")
    execution_id = events[0].data["execution_id"]
    again = await api.get(f"/v1/workflows/{execution_id}/events",
                          headers={"Last-Event-ID": str(events[-1].id)})
    assert again.status_code == 204  # the reader had the end: an EventSource stops here
    replay = await read_events(api, execution_id)
    assert [(e.id, e.event) for e in replay] == [(e.id, e.event) for e in events]


@pytest.fixture
async def postgres_database() -> AsyncIterator[str]:
    async with fresh_postgres_schema() as url:
        yield url


@pytest.fixture
def worker_replica_and_reader(postgres_database: str, engine_layout: EngineLayout,
                              tmp_path: Path) -> Iterator[list[LocalService]]:
    """Replica A runs the only worker and takes the submit; replica B serves the stream.
    B polls only every 300 s, so it can keep up with the run only through LISTEN/NOTIFY.
    They share one data folder (storage and signing secret), as a fleet must."""
    env = {"DATABASE_URL": postgres_database, "COMFY_SERVERLESS_HEARTBEAT_INTERVAL": "1",
           "COMFY_SERVERLESS_WEBHOOK_DISPATCHER": "false"}
    reader_env = {**env, "COMFY_SERVERLESS_EMBEDDED_WORKER": "false",
                  "COMFY_SERVERLESS_STREAM_POLL_INTERVAL": "300",
                  "COMFY_SERVERLESS_STREAM_HEARTBEAT_INTERVAL": "300"}
    with LocalService.start(tmp_path / "fleet", engine_layout.root, extra_env=env) as first, \
            LocalService.start(tmp_path / "fleet", engine_layout.root,
                               extra_env=reader_env) as second:
        yield [first, second]


async def test_the_stream_resumes_on_the_replica_that_did_not_take_the_submit(
    worker_replica_and_reader: list[LocalService],
) -> None:
    replica_a, replica_b = worker_replica_and_reader
    headers = {"Authorization": f"Bearer {replica_a.new_unthrottled_key()}"}
    async with httpx.AsyncClient(base_url=replica_a.base_url, headers=headers,
                                 timeout=60) as on_a, \
            httpx.AsyncClient(base_url=replica_b.base_url, headers=headers,
                              timeout=60) as on_b:
        started = time.monotonic()
        events = await _resumed_run(on_a, on_b)
        took = time.monotonic() - started
        _assert_whole_stream(events)
        assert took < 150, f"{took:.1f}s: replica B only saw the rows through its poll"
        replay_on_a = await read_events(on_a, events[0].data["execution_id"])
    assert [(e.id, e.event) for e in replay_on_a] == [(e.id, e.event) for e in events]
