"""A download in progress: a file that grows in chunks beside a running sha256.

The partial file is kept when a download fails on the network, so the next try asks for
the rest with `Range` and only the missing bytes cross the network. Its hash state is not
saved: a resumed download re-reads the bytes already on disk once (a local read, far
cheaper than fetching them again) to rebuild it.

Used from the download's thread, which writes and hashes each chunk itself: handing chunks
to a second thread cost more than it saved (1.3x to 2.4x the CPU per GB, no faster on two
busy cores; see docs/performance.md). Memory stays at one chunk whatever the size.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import BinaryIO

__all__ = ["PartialFile"]

_REHASH_CHUNK = 1 << 20


class PartialFile:
    """The partial download at `path`: `size` bytes so far, and their sha256."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.size = 0
        self._hasher = hashlib.sha256()
        self._handle: BinaryIO | None = None

    def resume(self) -> int:
        """Rebuild the running hash from what is already on disk; the byte offset to ask
        for next."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.touch()
        self.size, self._hasher = 0, hashlib.sha256()
        with self.path.open("rb") as handle:
            while chunk := handle.read(_REHASH_CHUNK):
                self._hasher.update(chunk)
                self.size += len(chunk)
        self._handle = self.path.open("ab")
        return self.size

    def restart(self) -> None:
        """Drop what is on disk (the server sent the whole body again, or no longer has
        the range)."""
        self.close()
        self.path.write_bytes(b"")
        self.size, self._hasher = 0, hashlib.sha256()
        self._handle = self.path.open("ab")

    def append(self, chunk: bytes | memoryview) -> None:
        if self._handle is None:
            raise RuntimeError("resume() opens a partial file before it is written")
        self._handle.write(chunk)
        self._hasher.update(chunk)
        self.size += len(chunk)

    def close(self) -> None:
        """Flush and close the file (kept on disk until it is adopted or discarded)."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def hexdigest(self) -> str:
        return self._hasher.hexdigest()

    def discard(self) -> None:
        self.close()
        self.path.unlink(missing_ok=True)
