"""A download in progress: a file that grows in chunks beside a running sha256.

The partial file is kept when a download fails on the network, so the next try asks for
the rest with `Range` and only the missing bytes cross the network. Beside it,
`<key>.tag` keeps the validator the server gave with the first byte (an HTTP ETag or
Last-Modified, an S3 ETag), sent back on the resume so that a changed file is never
continued (see transfer.py). Its hash state is not saved: a resumed download re-reads
the bytes already on disk once (a local read, far cheaper than fetching them again) to
rebuild it.

Used from the download's worker thread. Writing and hashing run in one more thread, a few
chunks behind the network (`_AHEAD`), so reading the next chunk overlaps hashing the last:
the download runs at the speed of the slower of the two, not their sum, and memory stays
at a few chunks whatever the size. The network is read into a ring of `_AHEAD + 2`
buffers (`buffer`) that the writer reads from in place: no chunk is copied on its way.
"""

from __future__ import annotations

import collections
import hashlib
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

__all__ = ["PartialFile"]

_REHASH_CHUNK = 1 << 20
_AHEAD = 4


class PartialFile:
    """The partial download at `path`: `size` bytes received so far."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.tag_path = path.with_suffix(".tag")
        self.validator: str | None = None
        self.size = 0
        self._hasher = hashlib.sha256()
        self._handle: BinaryIO | None = None
        self._writer: ThreadPoolExecutor | None = None
        self._pending: collections.deque[Future[None]] = collections.deque()
        self._broken = False  # after a failed write, nothing more is written
        self._ring: list[memoryview] = []
        self._turn = 0

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
        self.validator = _read_tag(self.tag_path) if self.size else None
        self._open()
        return self.size

    def restart(self) -> None:
        """Drop what is on disk (the server sent the whole body again, or no longer has
        the range)."""
        self.close()
        self.tag_path.unlink(missing_ok=True)
        self.path.write_bytes(b"")
        self.size, self._hasher, self.validator = 0, hashlib.sha256(), None
        self._open()

    def remember(self, validator: str | None) -> None:
        """Keep the validator of the bytes this (empty) partial file is about to get."""
        self.validator = validator
        if validator is not None:
            self.tag_path.write_text(validator)

    def _open(self) -> None:
        self._broken = False
        self._handle = self.path.open("ab")
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="model-write")

    def buffer(self, size: int) -> memoryview:
        """The next buffer of the ring to read a chunk into. It is free: `append` lets at
        most `_AHEAD` chunks wait for the writer, and the ring holds two more."""
        if not self._ring or len(self._ring[0]) != size:
            self._ring = [memoryview(bytearray(size)) for _ in range(_AHEAD + 2)]
        self._turn = (self._turn + 1) % len(self._ring)
        return self._ring[self._turn]

    def append(self, chunk: bytes | memoryview) -> None:
        """Queue `chunk` (bytes, or a slice of a `buffer`) for writing and hashing; waits
        only when `_AHEAD` chunks are already queued. A write error surfaces here or in
        `finish`."""
        if self._writer is None:
            raise RuntimeError("resume() opens a partial file before it is written")
        self._pending.append(self._writer.submit(self._write, chunk))
        self.size += len(chunk)
        if len(self._pending) > _AHEAD:
            self._pending.popleft().result()

    def _write(self, chunk: bytes | memoryview) -> None:
        if self._broken or self._handle is None:
            return
        try:
            self._handle.write(chunk)
        except BaseException:
            self._broken = True
            raise
        self._hasher.update(chunk)

    def finish(self) -> None:
        """Wait for every queued chunk, then close the file (kept on disk)."""
        while self._pending:
            self._pending.popleft().result()
        self.close()

    def close(self) -> None:
        """Close the file; chunks still queued are written first."""
        if self._writer is not None:
            self._writer.shutdown(wait=True)
            self._writer = None
        self._pending.clear()
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def hexdigest(self) -> str:
        return self._hasher.hexdigest()

    def discard(self) -> None:
        self.close()
        self.path.unlink(missing_ok=True)
        self.tag_path.unlink(missing_ok=True)


def _read_tag(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except FileNotFoundError:
        return None
