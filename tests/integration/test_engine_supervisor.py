"""The ComfyUI child never outlives its service, on the real engine: a SIGKILLed service
takes its ComfyUI with it, and a start ends the ComfyUI that an earlier start left behind
(and nothing else)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
from pathlib import Path

import pytest

from comfy_serverless.engine.comfyui.child_process import ChildRecord, end_stale_child
from comfy_serverless.engine.comfyui.installer import EngineLayout
from comfy_serverless.engine.comfyui.supervisor import EngineProcessConfig, SupervisedEngine
from comfy_serverless.testing import LocalService
from tests.helpers import wait_for

pytestmark = pytest.mark.comfyui


def _running(pid: int) -> bool:
    """Alive, and not merely a zombie waiting for its parent to reap it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


async def _gone(pid: int) -> bool:
    return not _running(pid)


async def test_a_sigkilled_service_takes_its_comfyui_with_it(
    engine_layout: EngineLayout, tmp_path: Path
) -> None:
    service = LocalService.launch(tmp_path / "data", engine_layout.root)
    try:
        service.wait_ready(240)
        comfyui = service.comfyui_pid()
        assert comfyui is not None
        assert _running(comfyui)
        service.process.send_signal(signal.SIGKILL)
        service.process.wait()
        await wait_for(lambda: _gone(comfyui), timeout=15, what="the orphaned ComfyUI to end")
    finally:
        service.stop()


async def test_a_start_ends_the_comfyui_an_earlier_start_left_running(
    engine_layout: EngineLayout, tmp_path: Path
) -> None:
    config = EngineProcessConfig(layout=engine_layout, state_dir=tmp_path / "comfyui")
    earlier = SupervisedEngine(config)
    await earlier.start()
    stale = earlier.pid
    assert stale is not None
    # The earlier supervisor is gone without stopping its child (say it was killed on a
    # system without PR_SET_PDEATHSIG): a new one starts on the same data folder.
    later = SupervisedEngine(config)
    try:
        await later.start()
        assert not _running(stale), "the stale ComfyUI was ended"
        assert later.pid != stale
        assert later.is_alive()
        assert json.loads(config.state_dir.joinpath("comfyui.pid").read_text())["pid"] == later.pid
    finally:
        await later.stop()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(stale, signal.SIGKILL)
    assert not config.state_dir.joinpath("comfyui.pid").exists()


def test_a_pidfile_naming_another_process_ends_nothing(tmp_path: Path) -> None:
    """A pid reused by another program (here: this test's own process) is left alone."""
    record = ChildRecord(tmp_path / "comfyui.pid", 8188, tmp_path / "output")
    record.write(os.getpid())
    assert end_stale_child(record) is None
    assert _running(os.getpid())
    assert not record.pidfile.exists()
