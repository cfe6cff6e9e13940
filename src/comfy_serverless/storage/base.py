"""The storage seam: where finished outputs go, and how a client gets them back."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

__all__ = ["OutputStorage", "StoredLocation"]


@dataclass(frozen=True)
class StoredLocation:
    provider: str
    key: str
    bucket: str | None = None


class OutputStorage(Protocol):
    provider: str

    async def put_file(self, key: str, source: Path, content_type: str) -> StoredLocation:
        """Move a finished file into storage under `key` (the source is consumed)."""
        ...

    def download_path(self, location: StoredLocation, expires: int) -> str:
        """A URL (absolute, or a path under this API) that downloads it until `expires`."""
        ...

    async def read_bytes(self, location: StoredLocation) -> bytes: ...
