"""The storage seam: where finished outputs (and staged input images) go, and how a client
gets them back. Each backend (local disk, S3) implements OutputStorage; StorageRouter picks
the backend from a location's provider."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from comfy_serverless.errors import StorageError
from comfy_serverless.store.records import OutputRecord

__all__ = [
    "OutputStorage",
    "StoredLocation",
    "absolute_url",
    "delete_quietly",
    "download_url",
    "location_of",
]

log = logging.getLogger(__name__)


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


async def delete_quietly(storage: OutputStorage, locations: Iterable[StoredLocation],
                         owner: str) -> None:
    """Best effort, file by file: a file that cannot be deleted is logged and left, so that
    tidying up never masks the answer or the failure that made it necessary."""
    for location in locations:
        try:
            await storage.delete(location)
        except StorageError as exc:
            log.warning("%s of %s left in storage: %s", location.key, owner, exc)


def location_of(output: OutputRecord) -> StoredLocation:
    """Where a recorded output is stored."""
    return StoredLocation(output.storage_provider, output.storage_key, output.storage_bucket,
                          output.public_access)


def absolute_url(base_url: str, url: str) -> str:
    """A storage URL as clients fetch it: signed local paths get the API's base URL."""
    return url if "://" in url else base_url.rstrip("/") + url


async def download_url(storage: OutputStorage, output: OutputRecord, *, base_url: str,
                       expires: int) -> str:
    """The URL a client (or a webhook receiver) downloads a recorded output from, valid
    until `expires`: results, the event stream and webhook payloads all link it this way."""
    path = await storage.download_path(location_of(output), expires)
    return absolute_url(base_url, path)
