import asyncio

import pytest

from comfy_serverless.background import BackgroundService
from comfy_serverless.errors import StoreError


class Scripted(BackgroundService):
    """Answers from a script: True (busy), False (idle), or an error to survive."""

    def __init__(self, script: list[object]) -> None:
        super().__init__(interval=60)
        self.script = script
        self.calls = 0
        self.drained = asyncio.Event()
        self.first_pass = asyncio.Event()

    async def run_once(self) -> object:
        self.calls += 1
        self.first_pass.set()
        step = self.script.pop(0) if self.script else False
        if not self.script:
            self.drained.set()
        if isinstance(step, Exception):
            raise step
        return step


async def test_busy_passes_run_back_to_back_and_store_errors_are_survived() -> None:
    service = Scripted([True, StoreError("db restarting"), False])
    service.interval = 0.01
    service.start()
    await asyncio.wait_for(service.drained.wait(), 5)
    await service.stop()
    assert service.calls >= 3


async def test_an_idle_pass_waits_for_the_interval() -> None:
    service = Scripted([False, True])
    service.start()
    await asyncio.wait_for(service.first_pass.wait(), 5)
    for _ in range(20):  # yield to the loop: a service that did not wait would pass again
        await asyncio.sleep(0)
    await service.stop()
    assert service.calls == 1, "after an idle pass it sleeps the interval (60 s)"


async def test_any_other_error_is_logged_with_its_traceback_and_survived(
    caplog: pytest.LogCaptureFixture,
) -> None:
    service = Scripted([PermissionError("read-only folder"), TypeError("bad header"), False])
    service.interval = 0.01
    service.start()
    await asyncio.wait_for(service.drained.wait(), 5)
    assert service._task is not None
    assert not service._task.done(), "the loop is alive"
    await service.stop()
    assert service.calls >= 3
    failures = [record for record in caplog.records if "unexpectedly" in record.getMessage()]
    assert len(failures) == 2
    assert all(record.exc_info for record in failures)
