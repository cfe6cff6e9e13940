"""A worker waits out a store that is briefly away before it gives up a job's outcome."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from comfy_serverless.errors import StoreError, StoreUnavailable
from comfy_serverless.store.records import ExecutionRecord, Lease
from comfy_serverless.worker.patience import already_written, when_store_answers


class FlakyWrite:
    def __init__(self, failures: int, error: Exception) -> None:
        self.failures = failures
        self.error = error
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return "recorded"


async def test_a_write_is_tried_again_until_the_store_answers() -> None:
    write = FlakyWrite(2, StoreUnavailable("the database system is shutting down"))
    assert await when_store_answers(write, within=5) == "recorded"
    assert write.calls == 3


async def test_past_the_window_the_outage_is_reported() -> None:
    write = FlakyWrite(100, StoreUnavailable("connection refused"))
    with pytest.raises(StoreUnavailable):
        await when_store_answers(write, within=0.25)
    assert 1 < write.calls < 5


async def test_other_store_errors_are_not_retried() -> None:
    write = FlakyWrite(1, StoreError("no such table"))
    with pytest.raises(StoreError):
        await when_store_answers(write, within=5)
    assert write.calls == 1


class CommitsThenLosesTheReply:
    """A store whose first write commits and then loses its reply (StoreUnavailable), so
    that the retry matches no row."""

    def __init__(self, lease: Lease) -> None:
        self.lease = lease
        self.row: ExecutionRecord | None = None
        self.calls = 0

    async def write(self, status: str) -> bool:
        self.calls += 1
        if self.calls > 1:
            return False  # the guarded UPDATE finds the row no longer 'processing'
        self.row = _row(self.lease, status)
        raise StoreUnavailable("server closed the connection unexpectedly")

    async def execution(self) -> ExecutionRecord | None:
        return self.row


def _row(lease: Lease, status: str) -> ExecutionRecord:
    fields: dict[str, Any] = {f.name: None for f in dataclasses.fields(ExecutionRecord)}
    fields.update(id=lease.execution_id, status=status, attempt=lease.attempt,
                  worker_id=None if status == "queued" else lease.worker_id,
                  lease_owner=lease.worker_id if status == "processing" else None,
                  engine_prompt_id="prompt-1")
    return ExecutionRecord(**fields)


@pytest.mark.parametrize("status", ["completed", "failed", "queued", "processing"])
async def test_a_commit_whose_reply_was_lost_counts_as_written(status: str) -> None:
    lease = Lease("exe_1", "worker-1", 2)
    store = CommitsThenLosesTheReply(lease)
    written = await when_store_answers(
        lambda: store.write(status), within=5,
        ours=already_written(store.execution, lease, status, "prompt-1"))
    assert written is True
    assert store.calls == 2


async def test_a_row_another_lease_wrote_is_not_ours() -> None:
    lease = Lease("exe_1", "worker-1", 2)
    store = CommitsThenLosesTheReply(Lease("exe_1", "worker-2", 3))
    written = await when_store_answers(
        lambda: store.write("completed"), within=5,
        ours=already_written(store.execution, lease, "completed"))
    assert written is False
