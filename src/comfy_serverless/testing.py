"""Runs a real local service in a subprocess, as a user would: for tests and benchmarks.

    with LocalService.start(data_dir, engine_dir) as service:
        key = service.new_key()
        httpx.post(service.base_url + "/v1/workflows/execute", ...)
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx

from comfy_serverless.ports import free_port, free_ports

__all__ = ["LocalService", "free_port", "free_ports", "scratch_postgres_schema"]


UNTHROTTLED = 10_000_000


@dataclass
class LocalService:
    base_url: str
    comfyui_url: str
    data_dir: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes]

    @classmethod
    @contextlib.contextmanager
    def start(cls, data_dir: Path, engine_dir: Path, *, extra_env: dict[str, str] | None = None,
              command: Sequence[str] | None = None, ready_timeout: float = 240
              ) -> Iterator[LocalService]:
        """Run the service until the block ends. `command` replaces `comfy-serverless serve`
        (it gets `--port P` appended), e.g. the README's `scripts/serve`."""
        service = cls.launch(data_dir, engine_dir, extra_env=extra_env, command=command)
        try:
            service.wait_ready(ready_timeout)
            yield service
        finally:
            service.stop()

    @classmethod
    def launch(cls, data_dir: Path, engine_dir: Path, *,
               extra_env: dict[str, str] | None = None,
               command: Sequence[str] | None = None) -> LocalService:
        api_port, comfyui_port = free_ports(2)
        env = {
            **os.environ,
            "COMFY_SERVERLESS_DATA_DIR": str(data_dir),
            "COMFY_SERVERLESS_ENGINE_DIR": str(engine_dir),
            "COMFY_SERVERLESS_COMFYUI_PORT": str(comfyui_port),
            **(extra_env or {}),
        }
        for name in ("COMFY_SERVERLESS_DATABASE_URL", "DATABASE_URL", "COMFYUI_URL"):
            if name not in (extra_env or {}):
                env.pop(name, None)
        data_dir.mkdir(parents=True, exist_ok=True)
        with (data_dir / "service.log").open("ab") as log:
            serve = list(command or [sys.executable, "-m", "comfy_serverless.cli", "serve"])
            process = subprocess.Popen([*serve, "--port", str(api_port)], env=env, stdout=log,
                                       stderr=log)
        return cls(f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{comfyui_port}",
                   data_dir, env, process)

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the service exited at start:\n{self.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.base_url + "/readyz", timeout=1).status_code == 200:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"the service was not ready after {timeout}s:\n{self.log_tail()}")

    def log_tail(self) -> str:
        return (self.data_dir / "service.log").read_text(errors="replace")[-3000:]

    def cli(self, *args: str) -> str:
        return subprocess.run(
            [sys.executable, "-m", "comfy_serverless.cli", *args], env=self.env,
            capture_output=True, text=True, check=True,
        ).stdout.strip()

    def new_key(self, *args: str) -> str:
        return self.cli("keys", "create", *args)

    def new_unthrottled_key(self) -> str:
        """A key whose limits no test or benchmark reaches (they poll, and submit hundreds)."""
        limits = [f"--limit={name}={UNTHROTTLED}" for name in (
            "requests_per_minute", "concurrent_executions", "max_queue_size", "monthly_quota")]
        return self.new_key("--tier", "enterprise", *limits)

    def comfyui_pid(self) -> int | None:
        """The pid of the ComfyUI child that listens on this service's ComfyUI port."""
        port_flag = f"--port\x00{self.comfyui_url.rsplit(':', 1)[1]}\x00"
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                cmdline = (proc / "cmdline").read_text()
                if "main.py" in cmdline and port_flag in cmdline:
                    return int(proc.name)
        return None

    def stop(self) -> None:
        comfyui_pid = self.comfyui_pid()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if comfyui_pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(comfyui_pid, signal.SIGKILL)


@contextlib.asynccontextmanager
async def scratch_postgres_schema(database_url: str, prefix: str = "t") -> AsyncIterator[str]:
    """A new, empty schema in the given database (dropped afterwards), as a database URL
    whose connections use it: tests and benchmarks never touch each other's tables."""
    schema = f"{prefix}_{secrets.token_hex(6)}"
    admin = await asyncpg.connect(database_url)
    try:
        await admin.execute(f"CREATE SCHEMA {schema}")
        yield f"{database_url}?search_path={schema}"
    finally:
        await admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await admin.close()
