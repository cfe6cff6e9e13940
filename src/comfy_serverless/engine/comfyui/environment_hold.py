"""What ComfyUI loaded of an installed environment, as the worker must publish it.

ComfyUI reads its custom nodes once, while it starts. An install that ran during that
start could leave ComfyUI with old or half-replaced packs while the record already names
the new environment, and the worker would claim jobs for code it does not run. So, for
each start, the supervisor takes the installer's lock shared (an install holds it
exclusively, so a start waits for one under way and an install waits for the start),
copies the record as it is then to a snapshot, writes ComfyUI's paths, and keeps the lock
until ComfyUI answers, its nodes loaded. The worker reads the snapshot.

Paths only: the engine driver knows nothing of the record's format (environments/).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["EnvironmentHold"]


@dataclass(frozen=True)
class EnvironmentHold:
    """`record` is the installer's record file and `lock` its lock file (None: the engine
    runs no environment); `snapshot` is where the record, as ComfyUI loaded it, goes."""

    record: Path | None
    lock: Path | None
    snapshot: Path

    @contextlib.asynccontextmanager
    async def held(self) -> AsyncIterator[None]:
        """While ComfyUI starts: no install changes the environment, and the snapshot is
        the record of what it loads (absent when none is installed)."""
        descriptor = self._open_lock()
        try:
            if descriptor is not None:
                await asyncio.to_thread(fcntl.flock, descriptor, fcntl.LOCK_SH)
            self._take_snapshot()
            yield
        finally:
            if descriptor is not None:
                os.close(descriptor)  # releases the lock

    def _open_lock(self) -> int | None:
        if self.lock is None or not self.lock.parent.is_dir():
            return None
        return os.open(self.lock, os.O_CREAT | os.O_RDWR, 0o644)

    def _take_snapshot(self) -> None:
        try:
            content = self.record.read_bytes() if self.record is not None else None
        except FileNotFoundError:
            content = None
        if content is None:
            self.snapshot.unlink(missing_ok=True)
            return
        self.snapshot.parent.mkdir(parents=True, exist_ok=True)
        partial = self.snapshot.with_name(f"{self.snapshot.name}.{os.getpid()}.partial")
        partial.write_bytes(content)
        os.replace(partial, self.snapshot)
