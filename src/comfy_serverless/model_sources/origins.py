"""Where each cached file came from, so that a worker can say it (the model list) and the
service can decide who may see or name it (a tenant sees a fetched file only when its tier
could fetch one of the file's sources).

    <root>/origins/<sha256>    a JSON array of {display, host, key, basename}, one per
                               source that this content was read from

`display` is the source's display form (no query string, no credential), `host` what a
tier's `model_sources` allowlist is matched against, `key` the cache's key of the source
(CacheLayout.key), which a job's required models name an unpinned source by, and
`basename` the source's file name: the placed name `<12 hex>-<basename>` it made.

An origin is recorded only for a source the cache read these bytes from (a verified
download), or whose own record (`sources/<key>`) already maps it to them: never for a
pinned source that merely names a hash the cache holds from elsewhere (CacheLayout.recall).
A placed link carries only the origins of its own basename (`origins_for_link`): two
tiers that fetched one content under two file names each see only their own placed name.
A record of an older layout (no basename) counts for no link: the file is then hidden
until it is fetched again.

The record is rewritten whole (write to a temporary file of a random name, then rename)
under a per-content lock (locks.exclusive), so two processes, or two containers sharing
the cache, adding an origin at once keep both.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path

from comfy_serverless.model_sources.locks import exclusive
from comfy_serverless.model_sources.sources import ModelSource

__all__ = ["Origin", "add_origin", "origins_for_link", "origins_of", "placed_blob"]

_FIELDS = ("display", "host", "key", "basename")


@dataclass(frozen=True)
class Origin:
    display: str
    host: str
    key: str
    basename: str


def _record(root: Path, sha256: str) -> Path:
    return root / "origins" / sha256


def origins_of(root: Path, sha256: str) -> tuple[Origin, ...]:
    """The recorded sources of the cached file `sha256` (none when unknown)."""
    with contextlib.suppress(OSError, ValueError):
        items = json.loads(_record(root, sha256).read_text())
        if isinstance(items, list):
            return tuple(Origin(*(str(item[name]) for name in _FIELDS))
                         for item in items if isinstance(item, dict) and set(_FIELDS) <= set(item))
    return ()


def origins_for_link(root: Path, sha256: str, link: Path) -> tuple[Origin, ...]:
    """The recorded sources of the placed `link` to `sha256`: those whose file name it
    bears (`<12 hex>-<basename>`)."""
    basename = link.name.partition("-")[2]
    return tuple(origin for origin in origins_of(root, sha256) if origin.basename == basename)


async def add_origin(root: Path, sha256: str, source: ModelSource, key: str) -> None:
    """Remember that `source` (whose cache key is `key`) has the content `sha256`; only
    for a source these bytes were read from (see the module's docstring)."""
    origin = Origin(source.display, source.host.lower(), key, source.basename)
    async with exclusive(root / "locks" / f"origin-{sha256}.lock"):
        known = origins_of(root, sha256)
        if origin in known:
            return
        record = _record(root, sha256)
        record.parent.mkdir(parents=True, exist_ok=True)
        temporary = record.with_name(f".{record.name}.{secrets.token_hex(8)}.tmp")
        try:
            temporary.write_text(json.dumps([asdict(item) for item in (*known, origin)]))
            os.replace(temporary, record)
        finally:
            temporary.unlink(missing_ok=True)


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
