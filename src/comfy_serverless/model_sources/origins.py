"""Where each cached file came from, so that a worker can say it (the model list) and the
service can decide who may see or name it (a tenant sees a fetched file only when its tier
could fetch one of the file's sources).

    <root>/origins/<sha256>    a JSON array of {display, host, key}, one per source that
                               turned out to have this content

`display` is the source's display form (no query string, no credential), `host` what a
tier's `model_sources` allowlist is matched against, and `key` the cache's key of the
source (CacheLayout.key), which a job's required models name an unpinned source by. The
record is rewritten whole (write, then rename); two processes adding an origin at once may
keep only one of them, which the next fetch of the other adds again.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from comfy_serverless.model_sources.sources import ModelSource

__all__ = ["Origin", "add_origin", "origins_of", "placed_blob"]


@dataclass(frozen=True)
class Origin:
    display: str
    host: str
    key: str


def _record(root: Path, sha256: str) -> Path:
    return root / "origins" / sha256


def origins_of(root: Path, sha256: str) -> tuple[Origin, ...]:
    """The recorded sources of the cached file `sha256` (none when unknown)."""
    with contextlib.suppress(OSError, ValueError):
        items = json.loads(_record(root, sha256).read_text())
        if isinstance(items, list):
            return tuple(Origin(str(item["display"]), str(item["host"]), str(item["key"]))
                         for item in items
                         if isinstance(item, dict) and {"display", "host", "key"} <= set(item))
    return ()


def add_origin(root: Path, sha256: str, source: ModelSource, key: str) -> None:
    """Remember that `source` (whose cache key is `key`) has the content `sha256`."""
    origin = Origin(source.display, source.host.lower(), key)
    known = origins_of(root, sha256)
    if origin in known:
        return
    record = _record(root, sha256)
    record.parent.mkdir(parents=True, exist_ok=True)
    temporary = record.with_name(f".{record.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps([asdict(item) for item in (*known, origin)]))
    os.replace(temporary, record)


def placed_blob(link: Path, root: Path) -> str | None:
    """The sha256 of the cached file that `link` (a file of a model folder) was placed
    from, or None for any other file."""
    if not link.is_symlink():
        return None
    with contextlib.suppress(OSError):
        target = Path(os.path.normpath(link.parent / os.readlink(link)))
        if target.parent == Path(os.path.normpath(root / "sha256")) and target.is_file():
            return target.name
    return None
