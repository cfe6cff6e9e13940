"""The cache's files on disk, content-addressed by sha256:

    <root>/sha256/<hex>          each model's bytes, once, whatever source named them
    <root>/sources/<key>         the sha256 a source turned out to have (key: a hash of the
                                 source's identity), so a source is fetched once; a pinned
                                 source with no such record is fetched even when the cache
                                 holds its content from another source
    <root>/partial/<key>.part    a download in progress (kept on a network failure when it
                                 can be resumed), `<key>.tag` its validator
    <root>/locks/<key>.lock      held while a source downloads; evict.lock while evicting
    <root>/pins/<hex>            a shared lock per holder while the file is in use
    <root>/links/<hex>           the names placed into model folders for this file
    <root>/origins/<hex>         the sources this file was fetched from (origins.py)

`root` is meant to be `<engine models folder>/.cs-cache`: ComfyUI scans only the model
folders it registers, so the cache itself is never listed. A loader sees a cached file
through `place`: a relative symbolic link `<model folder>/<first 12 hex>-<basename>` (e.g.
`checkpoints/3a7bd3e2360a-sd15.safetensors`), which the worker will put in the prompt in
place of the source. The hash prefix keeps two files of one basename apart; eviction
removes the links with the file.

The LRU order is each file's mtime, touched on every use, so it is shared by every process
on the machine. Eviction takes a file only when it can take that file's pin lock
exclusively: a file held by a running or claimed job, or by a preload, is never evicted.
Partial downloads count against the budget too, and are evicted (oldest first, with the
files) only when no process holds their source's download lock; lock files of sources that
nobody downloads are removed by the same sweep.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
from pathlib import Path

from comfy_serverless.loader_inputs import placed_name
from comfy_serverless.model_sources.errors import ModelUnavailable
from comfy_serverless.model_sources.locks import exclusive, hold_shared, try_exclusive
from comfy_serverless.model_sources.sources import ModelSource

__all__ = ["CacheFull", "CacheLayout", "affinity_token", "placed_name", "source_key"]

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def source_key(source: ModelSource) -> str:
    """One name per source (a hash of its identity, so no query string shows in it): the
    cache's file names for the source, and what a job's required models name it by."""
    return hashlib.sha256(source.identity.encode()).hexdigest()[:32]


def affinity_token(source: ModelSource) -> str:
    """What a job that names `source` requires on a worker's disk for model affinity: the
    content when pinned, else the source (a worker publishes both for its cached files)."""
    return f"sha256:{source.sha256}" if source.sha256 else f"source:{source_key(source)}"


class CacheFull(ModelUnavailable):
    """The file does not fit beside the files in use. Retryable: pins are released when
    their jobs end. A file larger than the whole budget is a plain ModelUnavailable."""

    retryable = True


class CacheLayout:
    def __init__(self, root: Path) -> None:
        self.root = root
        for folder in ("sha256", "sources", "partial", "locks", "pins", "links", "origins"):
            (root / folder).mkdir(parents=True, exist_ok=True)

    @staticmethod
    def key(source: ModelSource) -> str:
        return source_key(source)

    def blob(self, sha256: str) -> Path:
        return self.root / "sha256" / sha256

    def partial(self, source: ModelSource) -> Path:
        return self.root / "partial" / f"{self.key(source)}.part"

    def download_lock(self, source: ModelSource) -> Path:
        return self.root / "locks" / f"{self.key(source)}.lock"

    def recall(self, source: ModelSource) -> str | None:
        """The sha256 of a source's content when the cache holds it as fetched from this
        very source (`sources/<key>`), else None. A pinned source whose content the cache
        holds only from another source is a miss: it is fetched from its own source once,
        so that the cache never vouches that a source has content it was never read from
        (the origins that decide who may see a placed file), nor answers whether some
        tenant fetched a hash."""
        try:
            sha256 = (self.root / "sources" / self.key(source)).read_text().strip()
        except OSError:
            return None
        if not _SHA256.match(sha256) or source.sha256 not in (None, sha256):
            return None
        return sha256 if self.blob(sha256).exists() else None

    def adopt(self, partial: Path, sha256: str, source: ModelSource) -> Path:
        """Move a verified download into place (atomic rename) and remember its source."""
        blob = self.blob(sha256)
        os.replace(partial, blob)
        partial.with_suffix(".tag").unlink(missing_ok=True)  # its validator, if any
        record = self.root / "sources" / self.key(source)
        temporary = record.with_suffix(".tmp")
        temporary.write_text(sha256)
        os.replace(temporary, record)
        return blob

    def touch(self, sha256: str) -> None:
        os.utime(self.blob(sha256))

    def pin(self, sha256: str) -> int:
        """Hold `sha256` against eviction until the descriptor is closed."""
        return hold_shared(self.root / "pins" / sha256)

    def place(self, sha256: str, basename: str, folder: Path) -> Path:
        """The cached file as `<folder>/<hex prefix>-<basename>` (a symbolic link)."""
        link = folder / placed_name(sha256, basename)
        target = self.blob(sha256)
        if _points_at(link, target):
            return link
        folder.mkdir(parents=True, exist_ok=True)
        # A name of its own: two processes placing one file at once each rename their own
        # link (the same target) over the other's, never one from under the other.
        temporary = link.with_name(f".{link.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        temporary.symlink_to(os.path.relpath(target, folder))
        try:
            os.replace(temporary, link)
        except OSError:
            temporary.unlink(missing_ok=True)
            raise
        with (self.root / "links" / sha256).open("a") as record:
            record.write(f"{link}\n")
        return link

    async def make_room(self, incoming: int, max_bytes: int, own: Path | None = None) -> None:
        """Evict least recently used unpinned files, and partial downloads that no process
        holds, until `incoming` more bytes fit; `own` is the incoming partial file itself.
        Lock files of sources that no process holds are removed on the way."""
        if incoming > max_bytes:
            raise ModelUnavailable(f"the model is {incoming} bytes, more than the whole "
                                   f"cache budget of {max_bytes}")
        async with exclusive(self.root / "locks" / "evict.lock"):
            used = self._evict_until(max_bytes - incoming, own)
            self._sweep_locks()
        if used + incoming > max_bytes:
            raise CacheFull(f"the model cache cannot fit {incoming} more bytes: {used} of "
                            f"{max_bytes} are held by files in use")

    def _evict_until(self, room: int, own: Path | None) -> int:
        """Evict oldest-first while more than `room` bytes are used; the bytes left."""
        entries = sorted(self._entries(own), key=lambda entry: entry[1].st_mtime)
        used = sum(stat.st_size for _, stat in entries)
        for path, stat in entries:
            if used <= room:
                break
            if self._evict(path):
                used -= stat.st_size
        return used

    def _entries(self, own: Path | None) -> list[tuple[Path, os.stat_result]]:
        """The files that count against the budget: blobs and partial downloads."""
        paths = [*(self.root / "sha256").iterdir(),
                 *(path for path in (self.root / "partial").glob("*.part") if path != own)]
        entries = []
        for path in paths:
            with contextlib.suppress(FileNotFoundError):  # removed meanwhile
                entries.append((path, path.stat()))
        return entries

    def _evict(self, path: Path) -> bool:
        if path.suffix == ".part":
            return self._evict_partial(path)
        with try_exclusive(self.root / "pins" / path.name) as free:
            if not free:
                return False
            self._remove_links(path)
            path.unlink(missing_ok=True)
            (self.root / "origins" / path.name).unlink(missing_ok=True)
            return True

    def _evict_partial(self, partial: Path) -> bool:
        """Remove a partial download unless its download lock is held (in progress)."""
        with try_exclusive(self.root / "locks" / f"{partial.stem}.lock") as free:
            if not free:
                return False
            partial.unlink(missing_ok=True)
            partial.with_suffix(".tag").unlink(missing_ok=True)
            return True

    def _sweep_locks(self) -> None:
        """Remove the lock files of sources that no process downloads now."""
        for lock in (self.root / "locks").glob("*.lock"):
            if lock.name == "evict.lock":
                continue
            with try_exclusive(lock) as free:
                if free:
                    lock.unlink(missing_ok=True)

    def _remove_links(self, blob: Path) -> None:
        record = self.root / "links" / blob.name
        if not record.exists():
            return
        for line in set(record.read_text().splitlines()):
            link = Path(line)
            if _points_at(link, blob):
                link.unlink()
        record.unlink()


def _points_at(link: Path, target: Path) -> bool:
    """Whether `link` is a symbolic link to `target` (links are relative, so a models
    folder mounted elsewhere keeps them working)."""
    if not link.is_symlink():
        return False
    return os.path.normpath(link.parent / os.readlink(link)) == os.path.normpath(target)
