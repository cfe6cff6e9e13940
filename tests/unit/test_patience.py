"""A worker waits out a store that is briefly away before it gives up a job's outcome."""

from __future__ import annotations

import pytest

from comfy_serverless.errors import StoreError, StoreUnavailable
from comfy_serverless.worker.patience import when_store_answers


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
