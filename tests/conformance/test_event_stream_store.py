"""The event stream's rows (migration 0015), on SQLite and PostgreSQL alike: every change of
an execution is one numbered row, numbers run 1, 2, 3 … with no gap or repeat however many
writers race, and `end` is the last row of a finished execution, after its outputs."""

from __future__ import annotations

import asyncio
import time

from comfy_serverless.store.records import LogEntry, OutputRecord, ProgressSnapshot
from comfy_serverless.store.store import Store
from tests.store_setup import append_log
from workloads.rows import add_execution, add_key


def _output(execution_id: str, number: int, *, intermediate: bool = False) -> OutputRecord:
    return OutputRecord(
        id=f"out_{execution_id}_{number}", execution_id=execution_id, node_id="9",
        output_type="PREVIEW" if intermediate else "IMAGE", intermediate=intermediate,
        filename=f"{number}.png", content_type="image/png", size_bytes=10, width=8, height=8,
        format="PNG", storage_provider="local", storage_bucket=None,
        storage_key=f"outputs/{execution_id}/{number}.png", created_at=time.time())


async def _kinds(store: Store, execution_id: str) -> list[tuple[int, str]]:
    return [(row.seq, row.kind) for row in await store.stream.after(execution_id, 0)]


async def test_a_completed_execution_streams_its_outputs_before_its_end(store: Store) -> None:
    execution_id = await add_execution(store, await add_key(store))
    claimed = await store.claims.claim_next("w1", 30)
    assert claimed is not None
    step = ProgressSnapshot(0.5, "KSampler", "3", 1, 2, 0)
    assert await store.claims.record_progress(claimed.lease, step, outputs=[_output(execution_id, 0,
                                                                                intermediate=True)])
    log = [LogEntry(time.time(), "node_completed", "9", "SaveImage completed", {"d": 1})]
    done = ProgressSnapshot(1.0, None, None, 2, 2, 1)
    assert await store.claims.complete(claimed.lease, [_output(execution_id, 1)], done, 1.0, log)
    rows = await store.stream.after(execution_id, 0)
    assert [row.seq for row in rows] == list(range(1, len(rows) + 1))
    kinds = [row.kind for row in rows]
    assert sorted(kinds[:2]) == ["log", "status"]  # queued: the status and its log entry
    assert kinds[2:] == ["status", "progress", "preview", "output", "log", "status", "end"]
    assert rows[-1].data == {"status": "completed"}
    assert rows[3].data["current_step"] == 1
    assert rows[3].data["total_steps"] == 2
    assert rows[-3].data["details"] == {"d": 1}
    assert await store.stream.end_seq(execution_id) == rows[-1].seq


async def test_a_cancelled_or_failed_execution_ends_after_its_last_log_entry(
    store: Store,
) -> None:
    key = await add_key(store)
    cancelled = await add_execution(store, key)
    cancelled_row = await store.executions.cancel(cancelled, key.id, "user_requested", time.time())
    assert cancelled_row is not None
    assert [kind for _, kind in await _kinds(store, cancelled)][-3:] == ["log", "status", "end"]
    failed = await add_execution(store, key)
    claimed = await store.claims.claim_next("w1", 30)
    assert claimed is not None
    assert claimed.id == failed
    entry = LogEntry(time.time(), "execution_failed", None, "boom")
    assert await store.claims.fail(claimed.lease, {"error_type": "X"}, None, [entry])
    assert [kind for _, kind in await _kinds(store, failed)][-3:] == ["log", "status", "end"]


async def test_racing_writers_number_the_rows_without_gap_or_repeat(store: Store) -> None:
    execution_id = await add_execution(store, await add_key(store))
    claimed = await store.claims.claim_next("w1", 30)
    assert claimed is not None

    async def progress(step: int) -> None:
        snapshot = ProgressSnapshot(step / 40, "KSampler", "3", step, 40, 0)
        assert await store.claims.record_progress(claimed.lease, snapshot)

    async def log(number: int) -> None:
        await append_log(store, execution_id, [LogEntry(time.time(), "note", None, str(number))])

    await asyncio.gather(*(progress(step) for step in range(1, 21)),
                         *(log(number) for number in range(20)))
    assert await store.executions.cancel(execution_id, claimed.api_key_id, "user_requested",
                                         time.time())
    seqs = [seq for seq, _ in await _kinds(store, execution_id)]
    assert seqs == list(range(1, len(seqs) + 1))
    assert len(seqs) >= 2 + 1 + 20 + 20 + 3  # queued (2), started, progress, logs, cancel
