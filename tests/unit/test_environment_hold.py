"""The record a worker publishes is the one its ComfyUI loaded: each start of a supervised
engine holds the installer's lock (shared) and snapshots the record, and an install under
way holds a start off until it is done."""

from __future__ import annotations

import asyncio
import fcntl
import os
from pathlib import Path

import pytest

from comfy_serverless.engine.comfyui.environment_hold import EnvironmentHold
from comfy_serverless.environments.install import lock_path
from comfy_serverless.environments.record import (
    InstalledEnvironment,
    record_path,
    write_installed,
)
from comfy_serverless.worker.environment_watch import EnvironmentWatch

OLD = InstalledEnvironment("tools", "a" * 64)
NEW = InstalledEnvironment("tools", "b" * 64)


def hold_for(environment: Path, state: Path) -> EnvironmentHold:
    return EnvironmentHold(record_path(environment), lock_path(environment),
                           state / "environment-loaded.json")


async def test_the_worker_reads_the_snapshot_not_a_record_written_since(tmp_path: Path) -> None:
    environment, state = tmp_path / "environment", tmp_path / "state"
    write_installed(environment, OLD)
    hold = hold_for(environment, state)
    async with hold.held():
        pass  # ComfyUI started and loaded OLD's nodes
    write_installed(environment, NEW)  # installed while it runs: for the next start
    watch = EnvironmentWatch(environment, hold.snapshot)
    assert watch.read() == OLD
    async with hold.held():  # the next start
        pass
    assert watch.read() == NEW


async def test_no_record_removes_a_stale_snapshot(tmp_path: Path) -> None:
    environment, state = tmp_path / "environment", tmp_path / "state"
    write_installed(environment, OLD)
    hold = hold_for(environment, state)
    async with hold.held():
        pass
    record_path(environment).unlink()
    async with hold.held():
        pass
    assert not hold.snapshot.exists()
    assert EnvironmentWatch(environment, hold.snapshot).read() is None


async def test_a_start_waits_for_an_install_under_way(tmp_path: Path) -> None:
    environment, state = tmp_path / "environment", tmp_path / "state"
    write_installed(environment, OLD)
    hold = hold_for(environment, state)
    entered = asyncio.Event()

    async def start() -> None:
        async with hold.held():
            entered.set()

    installer = os.open(lock_path(environment), os.O_CREAT | os.O_RDWR, 0o644)
    fcntl.flock(installer, fcntl.LOCK_EX)  # an install is replacing the environment
    task = asyncio.create_task(start())
    done, _ = await asyncio.wait({task}, timeout=0.3)
    assert not done
    assert not entered.is_set()
    write_installed(environment, NEW)
    os.close(installer)  # the install is done
    await asyncio.wait_for(task, timeout=10)
    assert EnvironmentWatch(environment, hold.snapshot).read() == NEW


async def test_an_install_waits_for_a_start_to_load_its_nodes(tmp_path: Path) -> None:
    environment, state = tmp_path / "environment", tmp_path / "state"
    write_installed(environment, OLD)
    hold = hold_for(environment, state)
    installer = os.open(lock_path(environment), os.O_CREAT | os.O_RDWR, 0o644)
    try:
        async with hold.held():
            with pytest.raises(BlockingIOError):  # an install may not take it now
                fcntl.flock(installer, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(installer, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free once it is up
    finally:
        os.close(installer)


async def test_an_engine_without_an_environment_folder_holds_nothing(tmp_path: Path) -> None:
    hold = hold_for(tmp_path / "none", tmp_path / "state")
    async with hold.held():
        pass
    assert not hold.snapshot.exists()
    assert not (tmp_path / "none").exists()
