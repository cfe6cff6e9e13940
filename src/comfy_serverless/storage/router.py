"""One OutputStorage over every configured backend, chosen by each location's provider."""

from __future__ import annotations

from pathlib import Path

from comfy_serverless.errors import StorageError
from comfy_serverless.storage.base import OutputStorage, StoredLocation
from comfy_serverless.storage.local import LocalStorage

__all__ = ["StorageRouter"]


class StorageRouter:
    def __init__(self, local: LocalStorage, s3: OutputStorage | None = None) -> None:
        self.local = local
        self.s3 = s3

    def backend(self, provider: str) -> OutputStorage:
        if provider == "local":
            return self.local
        if provider == "s3" and self.s3 is not None:
            return self.s3
        raise StorageError(f"storage provider {provider!r} is not configured")

    async def put_file(self, location: StoredLocation, source: Path, content_type: str
                       ) -> StoredLocation:
        return await self.backend(location.provider).put_file(location, source, content_type)

    async def download_path(self, location: StoredLocation, expires: int) -> str:
        return await self.backend(location.provider).download_path(location, expires)

    async def read_bytes(self, location: StoredLocation) -> bytes:
        return await self.backend(location.provider).read_bytes(location)

    async def fetch_to(self, location: StoredLocation, target: Path) -> None:
        await self.backend(location.provider).fetch_to(location, target)

    async def delete(self, location: StoredLocation) -> None:
        await self.backend(location.provider).delete(location)
