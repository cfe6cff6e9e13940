"""Runs ComfyUI as a supervised child process, or attaches to one that already runs.

A crash or OOM inside ComfyUI never takes the worker down: the supervisor notices the exit,
starts a new process on the same port and directories, and the worker carries on. The
child never outlives the supervising process, and a start ends a child that an earlier,
killed start left behind (see child_process.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import httpx

from comfy_serverless.engine.comfyui.child_process import (
    ChildRecord,
    dying_with_parent,
    end_stale_child,
)
from comfy_serverless.engine.comfyui.environment_hold import EnvironmentHold
from comfy_serverless.engine.comfyui.installer import EngineLayout
from comfy_serverless.errors import EngineUnavailable
from comfy_serverless.ports import free_port

__all__ = ["AttachedEngine", "Engine", "EngineProcessConfig", "SupervisedEngine"]

log = logging.getLogger(__name__)

# comfy-serverless's hooks inside ComfyUI, loaded as a custom-node package.
HOOKS_DIR = Path(__file__).resolve().parent / "extension"
# What earlier executions may have left in these folders (a killed worker, say); the
# operator's own shared inputs, elsewhere in input/, are kept.
_EXECUTION_FOLDERS = ("output", "temp", "input/comfy-serverless")


class Engine(Protocol):
    """What a worker needs from its ComfyUI: a URL, and a way to make sure it is up."""

    base_url: str
    # How many times it was restarted after the first start, counted once the new one
    # answers: a worker that has seen fewer catches up with it (cache, catalog, device, hooks).
    restarts: int

    def local_folders(self) -> dict[str, Path]:
        """ComfyUI's output/temp/input folders when they are on this machine, else {}."""
        ...

    async def start(self) -> None: ...

    async def ensure_running(self) -> bool:
        """Wait until ComfyUI answers; True if it had to be (re)started for that."""
        ...

    def is_alive(self) -> bool: ...

    async def restart(self) -> bool:
        """Replace a ComfyUI that answers but no longer works; False if it cannot be."""
        ...

    async def stop(self) -> None: ...


@dataclass(frozen=True)
class EngineProcessConfig:
    layout: EngineLayout
    state_dir: Path
    port: int = 0
    extra_args: tuple[str, ...] = field(default_factory=tuple)
    start_timeout: float = 180.0
    preview_method: str = "auto"
    # An installed environment (environments/): a folder of custom node packs, and a folder
    # whose subfolders (checkpoints/, loras/ …) ComfyUI reads models from, besides its own.
    extra_custom_nodes: Path | None = None
    extra_models: Path | None = None
    # Its record and the installer's lock file: each start holds the lock and snapshots the
    # record to `loaded_environment_record` (environment_hold.py).
    environment_record: Path | None = None
    environment_lock: Path | None = None


async def _answers(base_url: str) -> bool:
    try:
        async with httpx.AsyncClient(timeout=2.0) as http:
            return (await http.get(base_url + "/system_stats")).status_code == 200
    except httpx.HTTPError:
        return False


class SupervisedEngine:
    def __init__(self, config: EngineProcessConfig) -> None:
        self._config = config
        self._port = config.port or free_port()
        self.base_url = f"http://127.0.0.1:{self._port}"
        self._process: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()
        self.restarts = 0
        self._record = ChildRecord(config.state_dir / "comfyui.pid", self._port,
                                   config.state_dir / "output")
        self.loaded_environment_record = config.state_dir / "environment-loaded.json"
        self._environment = EnvironmentHold(config.environment_record, config.environment_lock,
                                            self.loaded_environment_record)

    def local_folders(self) -> dict[str, Path]:
        state = self._config.state_dir
        # ComfyUI puts its temp files in a `temp` folder inside --temp-directory.
        return {"output": state / "output", "temp": state / "temp" / "temp",
                "input": state / "input"}

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def is_alive(self) -> bool:
        return self._process is not None and self._process.returncode is None

    async def start(self) -> None:
        await self.ensure_running()

    async def ensure_running(self) -> bool:
        async with self._lock:
            if self.is_alive():
                return False
            restarting = self._process is not None
            if self._process is not None:
                log.warning("ComfyUI (pid %s) is gone; restarting it", self._process.pid)
                await self._terminate()
            async with self._environment.held():
                await self._spawn()
                await self._wait_ready()
            self.restarts += restarting  # counted once the new one answers
            return True

    async def restart(self) -> bool:
        async with self._lock:
            log.warning("restarting ComfyUI (pid %s): its prompt worker stopped", self.pid)
            await self._terminate()
            async with self._environment.held():
                await self._spawn()
                await self._wait_ready()
            self.restarts += 1  # counted once the new one answers
            return True

    async def stop(self) -> None:
        async with self._lock:
            await self._terminate()

    def _command(self) -> list[str]:
        layout, state = self._config.layout, self._config.state_dir
        device_args = ["--cpu"] if layout.device() == "cpu" else []
        return [
            str(layout.python), "main.py", *device_args,
            "--listen", "127.0.0.1", "--port", str(self._port), "--disable-auto-launch",
            "--front-end-root", str(layout.frontend_dir),
            "--output-directory", str(state / "output"),
            "--input-directory", str(state / "input"),
            "--temp-directory", str(state / "temp"),
            "--database-url", f"sqlite:///{state / 'comfyui.db'}",
            "--disable-api-nodes",
            "--extra-model-paths-config", str(state / "comfy-serverless-paths.yaml"),
            "--preview-method", self._config.preview_method,
            *self._config.extra_args,
        ]

    async def _spawn(self) -> None:
        state = self._config.state_dir
        await asyncio.to_thread(end_stale_child, self._record)
        _prepare_folders(state)
        _write_paths_config(self._config)
        log_file = (state / "comfyui.log").open("ab")
        log.info("starting ComfyUI on %s", self.base_url)
        try:
            self._process = await asyncio.create_subprocess_exec(
                *dying_with_parent(self._command()), cwd=self._config.layout.comfyui_dir,
                stdin=asyncio.subprocess.DEVNULL, stdout=log_file, stderr=log_file,
                start_new_session=True,
            )
        finally:
            log_file.close()
        self._record.write(self._process.pid)

    async def _wait_ready(self) -> None:
        deadline = time.monotonic() + self._config.start_timeout
        while time.monotonic() < deadline:
            if not self.is_alive():
                raise EngineUnavailable(f"ComfyUI exited at start: {self._log_tail()}")
            if await _answers(self.base_url):
                log.info("ComfyUI ready on %s (pid %s)", self.base_url, self.pid)
                return
            await asyncio.sleep(0.25)
        raise EngineUnavailable(f"ComfyUI not ready after {self._config.start_timeout}s")

    async def _terminate(self) -> None:
        process = self._process
        if process is None or process.returncode is not None:
            return
        self._record.clear()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), 10)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()

    def _log_tail(self) -> str:
        path = self._config.state_dir / "comfyui.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""


def _prepare_folders(state: Path) -> None:
    """Empty execution folders."""
    for folder in _EXECUTION_FOLDERS:
        shutil.rmtree(state / folder, ignore_errors=True)
        (state / folder).mkdir(parents=True, exist_ok=True)


def _write_paths_config(config: EngineProcessConfig) -> None:
    """The paths file that makes ComfyUI load the hooks, and an installed environment's
    custom nodes and model folders (read at each start: an install shows at the next)."""
    paths: dict[str, dict[str, str]] = {"comfy_serverless": {"custom_nodes": str(HOOKS_DIR)}}
    environment: dict[str, str] = {}
    if config.extra_custom_nodes is not None and config.extra_custom_nodes.is_dir():
        environment["custom_nodes"] = str(config.extra_custom_nodes)
    if config.extra_models is not None and config.extra_models.is_dir():
        environment |= {folder.name: str(folder) for folder in
                        sorted(config.extra_models.iterdir()) if folder.is_dir()}
    if environment:
        paths["comfy_serverless_environment"] = environment
    (config.state_dir / "comfy-serverless-paths.yaml").write_text(
        json.dumps(paths))  # JSON is YAML


class AttachedEngine:
    """A ComfyUI that someone else runs (COMFYUI_URL): we wait for it, never restart it."""

    def __init__(self, base_url: str, *, wait_timeout: float = 60.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._wait_timeout = wait_timeout
        self._reached = False
        self.restarts = 0  # never restarted by us

    def is_alive(self) -> bool:
        return True

    def local_folders(self) -> dict[str, Path]:
        return {}

    async def start(self) -> None:
        await self.ensure_running()

    async def ensure_running(self) -> bool:
        """Wait for it once; afterwards its WebSocket tells whether it is there."""
        if self._reached:
            return False
        deadline = time.monotonic() + self._wait_timeout
        while not await _answers(self.base_url):
            if time.monotonic() > deadline:
                raise EngineUnavailable(f"ComfyUI at {self.base_url} does not answer")
            await asyncio.sleep(0.5)
        self._reached = True
        return False

    async def restart(self) -> bool:
        log.error("ComfyUI at %s looks stuck, and it is not ours to restart", self.base_url)
        return False

    async def stop(self) -> None:
        return None
