"""The merged catalog of the workers heard from recently, as the API validates against it,
and the node packs those workers publish as verified (their environment's install scanned
them and found nothing), which count as verified for `custom_nodes_require_verification`
beside `verified_node_packs`.

Checked at most every few seconds: one indexed query for the set of catalog hashes (one
for the node packs, one for the placed files), and a catalog is parsed only when a new one
appears. With it, the files the workers placed from their model caches and their sources:
`for_tier` is the catalog as one tier sees it, with the placed files whose sources the tier
could not fetch left out of every option (a fetched model never shows to, or is accepted
from, another tenant).

It lives beside its callers (the Submitter, the convert route and command) rather than in
validation/, so that validation stays pure: it is handed a catalog and rules, and never
reads the store.
"""

from __future__ import annotations

import time

from comfy_serverless.models.listing import HostCheck
from comfy_serverless.store.models import FileSource
from comfy_serverless.store.store import Store
from comfy_serverless.validation.catalog import NodeCatalog

__all__ = ["CatalogCache"]

# How many narrowed catalogs are kept (one per set of hidden files: about one per tier).
_MAX_NARROWED = 16


class CatalogCache:
    def __init__(self, store: Store, *, max_age: float, refresh_seconds: float = 5.0) -> None:
        self._store = store
        self._max_age = max_age
        self._refresh_seconds = refresh_seconds
        self._parsed: dict[str, NodeCatalog] = {}
        self._hashes: frozenset[str] = frozenset()
        self._merged: NodeCatalog | None = None
        self._checked_at = float("-inf")
        # Published as verified by some worker and flagged by none (a pack of the same name
        # that another worker's scan flagged might be the one that runs the job).
        self.verified_node_packs: frozenset[str] = frozenset()
        self._placed: dict[str, tuple[FileSource, ...]] = {}
        # The merged catalog without each set of hidden files asked for (reset with it).
        self._narrowed: dict[frozenset[str], NodeCatalog] = {}

    async def for_tier(self, may_fetch: HostCheck) -> tuple[NodeCatalog | None, frozenset[str]]:
        """The catalog as a tier that passes `may_fetch` sees it, and the placed files it
        may not use (those whose sources it could not fetch)."""
        merged = await self.current()
        hidden = frozenset(name for name, sources in self._placed.items()
                           if not any(may_fetch(source.host) for source in sources))
        if merged is None or not hidden:
            return merged, hidden
        if hidden not in self._narrowed:
            kept = self._narrowed if len(self._narrowed) < _MAX_NARROWED else {}
            self._narrowed = {**kept, hidden: merged.without_options(hidden)}
        return self._narrowed[hidden], hidden

    async def current(self) -> NodeCatalog | None:
        """None until some worker has published a catalog."""
        now = time.monotonic()
        if now - self._checked_at < self._refresh_seconds:
            return self._merged
        self._checked_at = now
        since = time.time() - self._max_age
        hashes = frozenset(await self._store.workers.catalog_hashes(since))
        packs = await self._store.workers.node_packs(since)
        self.verified_node_packs = packs.verified - packs.flagged
        self._placed = await self._store.models.placed_files(since)
        if hashes != self._hashes:
            await self._load(hashes)
            self._narrowed = {}
        return self._merged

    async def _load(self, hashes: frozenset[str]) -> None:
        for digest in hashes - set(self._parsed):
            object_info = await self._store.workers.catalog(digest)
            if object_info is not None:
                self._parsed[digest] = NodeCatalog.from_object_info(object_info)
        self._parsed = {digest: self._parsed[digest] for digest in hashes if digest in self._parsed}
        self._hashes = hashes
        catalogs = list(self._parsed.values())
        self._merged = NodeCatalog.merged(catalogs) if catalogs else None
