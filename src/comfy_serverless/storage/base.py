"""The storage seam: where finished outputs (and staged input images) go, and how a client
gets them back. Each backend (local disk, S3) implements OutputStorage; StorageRouter picks
the backend from a location's provider."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from comfy_serverless.store.records import OutputRecord

__all__ = ["OutputStorage", "StoredLocation", "location_of"]


@dataclass(frozen=True)
class StoredLocation:
    provider: str
    key: str
    bucket: str | None = None
    public: bool = False


class OutputStorage(Protocol):
    async def put_file(self, location: StoredLocation, source: Path, content_type: str
                       ) -> StoredLocation:
        """Move a finished file into storage at `location` (the source is consumed)."""
        ...

    async def download_path(self, location: StoredLocation, expires: int) -> str:
        """A URL (absolute, or a path under this API) that downloads it until `expires`;
        for a public object, its plain URL. Async: signing may refresh credentials."""
        ...

    async def read_bytes(self, location: StoredLocation) -> bytes: ...

    async def fetch_to(self, location: StoredLocation, target: Path) -> None:
        """Copy the stored file to `target`, streamed."""
        ...

    async def delete(self, location: StoredLocation) -> None:
        """Remove the stored file; a file already gone is not an error."""
        ...


def location_of(output: OutputRecord) -> StoredLocation:
    """Where a recorded output is stored."""
    return StoredLocation(output.storage_provider, output.storage_key, output.storage_bucket,
                          output.public_access)
