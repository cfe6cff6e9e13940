"""Advisory file locks (fcntl `flock`) shared by every process on one machine: one per
download (single flight across processes), one for eviction, and one per pinned file.

A flock belongs to an open file, so two opens in one process exclude each other just as two
processes do, and the kernel drops it when its holder dies: a killed worker never leaves a
file pinned or a download locked.

The cache's sweep removes a download's lock file while it holds that lock, so whoever
locks a file checks that `path` still names it, and locks the new one when it does not:
two holders never hold two different files of one path.
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
    descriptor = await _lock(path)
    try:
        yield
    finally:
        os.close(descriptor)


async def _lock(path: Path) -> int:
    while True:
        descriptor = _open(path)
        try:
            await _wait_for(descriptor)
        except BaseException:
            os.close(descriptor)
            raise
        if _current(descriptor, path):
            return descriptor
        os.close(descriptor)  # swept while we waited: lock the file now at `path`


async def _wait_for(descriptor: int) -> None:
    while True:
        if _try_lock(descriptor):
            return
        await asyncio.sleep(_POLL_SECONDS)


@contextmanager
def try_exclusive(path: Path) -> Iterator[bool]:
    """Take the lock at `path` if nobody holds it; yields whether it was taken."""
    descriptor = _open(path)
    try:
        yield _try_lock(descriptor) and _current(descriptor, path)
    finally:
        os.close(descriptor)


def _try_lock(descriptor: int) -> bool:
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _current(descriptor: int, path: Path) -> bool:
    """Whether the locked file is still the one at `path` (a sweep may have removed it)."""
    try:
        named, held = os.stat(path), os.fstat(descriptor)
    except FileNotFoundError:
        return False
    return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)


def hold_shared(path: Path) -> int:
    """A shared lock at `path`, held until the returned descriptor is closed; blocks only
    while an eviction holds it exclusively (a short delete)."""
    descriptor = _open(path)
    fcntl.flock(descriptor, fcntl.LOCK_SH)
    return descriptor
