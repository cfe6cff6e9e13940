"""Spool files: data on its way between ComfyUI, the network and storage, kept on disk
rather than in memory, and never left behind by a failure."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from types import TracebackType

__all__ = ["SpoolFile"]


class SpoolFile:
    """A new file in `folder`, written in chunks. Used as a context manager, it is closed
    and kept when the block ends normally, and removed when the block raises; `discard`
    removes it at any time."""

    def __init__(self, folder: Path) -> None:
        descriptor, name = tempfile.mkstemp(dir=folder)
        self._handle = os.fdopen(descriptor, "wb")
        self.path = Path(name)

    def write(self, chunk: bytes) -> None:
        self._handle.write(chunk)

    def keep(self) -> Path:
        """Close the file and hand over its path (the caller removes it when done)."""
        self._handle.close()
        return self.path

    def discard(self) -> None:
        self._handle.close()
        self.path.unlink(missing_ok=True)

    def __enter__(self) -> SpoolFile:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if kind is None:
            self.keep()
        else:
            self.discard()
