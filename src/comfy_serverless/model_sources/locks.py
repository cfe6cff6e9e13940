"""Advisory file locks (fcntl `flock`) shared by every process on one machine: one per
download (single flight across processes), one for eviction, and one per pinned file.

A flock belongs to an open file, so two opens in one process exclude each other just as two
processes do, and the kernel drops it when its holder dies: a killed worker never leaves a
file pinned or a download locked.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

__all__ = ["exclusive", "hold_shared", "try_exclusive"]

_POLL_SECONDS = 0.05


def _open(path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)


@asynccontextmanager
async def exclusive(path: Path) -> AsyncIterator[None]:
    """Wait (without blocking the event loop, and cancellably) for the lock at `path`."""
    descriptor = _open(path)
    try:
        while True:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                await asyncio.sleep(_POLL_SECONDS)
        yield
    finally:
        os.close(descriptor)


@contextmanager
def try_exclusive(path: Path) -> Iterator[bool]:
    """Take the lock at `path` if nobody holds it; yields whether it was taken."""
    descriptor = _open(path)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(descriptor)


def hold_shared(path: Path) -> int:
    """A shared lock at `path`, held until the returned descriptor is closed; blocks only
    while an eviction holds it exclusively (a short delete)."""
    descriptor = _open(path)
    fcntl.flock(descriptor, fcntl.LOCK_SH)
    return descriptor
