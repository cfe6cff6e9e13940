"""Outputs on local disk, served back by this API through signed, expiring URLs.

Every OSError of the disk (missing file, permissions, disk full) becomes StorageError here,
the one boundary for this backend.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import shutil
from pathlib import Path, PurePosixPath

from comfy_serverless.errors import StorageError
from comfy_serverless.storage.base import StoredLocation
from comfy_serverless.storage.signing import UrlSigner

__all__ = ["LocalStorage"]


class LocalStorage:
    provider = "local"

    def __init__(self, root: Path, signer: UrlSigner) -> None:
        self.root = root
        self.signer = signer
        root.mkdir(parents=True, exist_ok=True)

    def path_for(self, key: str) -> Path:
        """The file behind `key`, refusing any key that would leave the storage root."""
        relative = PurePosixPath(key)
        if relative.is_absolute() or ".." in relative.parts or not relative.parts:
            raise StorageError(f"invalid storage key {key!r}")
        return self.root.joinpath(*relative.parts)

    async def put_file(self, location: StoredLocation, source: Path, content_type: str
                       ) -> StoredLocation:
        target = self.path_for(location.key)
        try:
            _rename_into_place(source, target)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise StorageError(f"cannot store {target.name}: {exc}") from exc
            await asyncio.to_thread(_move_into_place, source, target)
        return StoredLocation(self.provider, location.key)

    async def download_path(self, location: StoredLocation, expires: int) -> str:
        return self.signer.signed_path(location.key, expires)

    async def read_bytes(self, location: StoredLocation) -> bytes:
        path = self.path_for(location.key)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except OSError as exc:
            raise StorageError(f"cannot read {location.key}: {exc}") from exc

    async def fetch_to(self, location: StoredLocation, target: Path) -> None:
        source = self.path_for(location.key)
        try:
            await asyncio.to_thread(shutil.copyfile, source, target)
        except OSError as exc:
            raise StorageError(f"cannot read {location.key}: {exc}") from exc

    async def delete(self, location: StoredLocation) -> None:
        path = self.path_for(location.key)
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot delete {location.key}: {exc}") from exc
        if path.parent != self.root:
            with contextlib.suppress(OSError):  # not empty yet: other files remain
                path.parent.rmdir()


def _rename_into_place(source: Path, target: Path) -> None:
    """Same filesystem: an atomic rename, microseconds, fine on the event loop."""
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(source, target)


def _move_into_place(source: Path, target: Path) -> None:
    """Another filesystem: copy to a partial file, then rename (run in a thread)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    try:
        shutil.move(source, partial)
        os.replace(partial, target)
    except OSError as exc:
        raise StorageError(f"cannot store {target.name}: {exc}") from exc
