"""A download in progress: a file that grows in chunks beside a running sha256.

The partial file is kept when a download fails on the network, so the next try asks for
the rest with `Range` and only the missing bytes cross the network. Its hash state is not
saved: a resumed download re-reads the bytes already on disk once (a local read, far
cheaper than fetching them again) to rebuild it. Writes and hashing run in a thread, so a
large model never stalls the event loop, and memory stays at one chunk whatever the size.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path
from typing import BinaryIO

__all__ = ["PartialFile"]

_REHASH_CHUNK = 1 << 20


class PartialFile:
    """The partial download at `path`: `size` bytes so far, their sha256 in `hasher`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.size = 0
        self._hasher = hashlib.sha256()
        self._handle: BinaryIO | None = None

    async def resume(self) -> int:
        """Rebuild the running hash from what is already on disk; the byte offset to ask
        for next."""
        self.size, self._hasher = await asyncio.to_thread(_hash_existing, self.path)
        self._handle = self.path.open("ab")
        return self.size

    async def restart(self) -> None:
        """Drop what is on disk (the server sent the whole body again, or no longer has
        the range)."""
        self.close()
        await asyncio.to_thread(self.path.write_bytes, b"")
        self.size, self._hasher = 0, hashlib.sha256()
        self._handle = self.path.open("ab")

    async def append(self, chunk: bytes) -> None:
        await asyncio.to_thread(self._append, chunk)

    def _append(self, chunk: bytes) -> None:
        if self._handle is None:
            raise RuntimeError("resume() opens a partial file before it is written")
        self._handle.write(chunk)
        self._hasher.update(chunk)
        self.size += len(chunk)

    def hexdigest(self) -> str:
        return self._hasher.hexdigest()

    def close(self) -> None:
        """Flush and close the file (kept on disk: a later try resumes from it)."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def discard(self) -> None:
        self.close()
        self.path.unlink(missing_ok=True)


def _hash_existing(path: Path) -> tuple[int, hashlib._Hash]:
    hasher = hashlib.sha256()
    size = 0
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(_REHASH_CHUNK):
                hasher.update(chunk)
                size += len(chunk)
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    os.utime(path)
    return size, hasher
