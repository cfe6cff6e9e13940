"""The merged catalog of the workers heard from recently, as the API validates against it,
and the node packs that count as verified for `custom_nodes_require_verification` beside
`verified_node_packs`: a pack that every live worker whose catalog has its nodes publishes
as verified (its environment's install scanned it and found nothing). One worker without
an environment, or whose environment does not list the pack, and the pack is not verified:
the job might be claimed by that worker, whose copy nobody scanned. A pack that any worker's
scan flagged is not verified either.

Verification is then applied per node class, not per pack name (validation/catalog.py): a
class that one worker's catalog maps to a verified pack and another's to a pack nobody
vouched for (or to core and to a pack) counts as coming from both, and is refused.

Checked at most every few seconds: one indexed query for each live worker's catalog hash and
published packs (one for the placed files); a catalog is parsed only when a new one appears,
and the verified packs are worked out again only when what the workers publish changed.
With it, the files the workers placed from their model caches and their sources: `for_tier`
is the catalog as one tier sees it. Deny by default: every option that has the shape of a
placed name (`loader_inputs.is_placed_name`) is left out unless a current record of the
file's sources names one the tier could fetch, so a fetched model never shows to, or is
accepted from, another tenant, also when its record is missing (a worker's catalog
published before its model folders, a catalog refreshed before a rescan, model rows
forgotten while the catalog is still used). The catalogs and the records are read over
the same workers: those heard from within `max_age`, stopped or not.

It lives beside its callers (the Submitter, the convert route and command) rather than in
validation/, so that validation stays pure: it is handed a catalog and rules, and never
reads the store.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping

from comfy_serverless.loader_inputs import is_placed_name
from comfy_serverless.models.listing import HostCheck
from comfy_serverless.store.models import FileSource
from comfy_serverless.store.store import Store
from comfy_serverless.store.workers import WorkerPacks
from comfy_serverless.validation.catalog import NodeCatalog

__all__ = ["CatalogCache", "verified_packs"]

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
        # Vouched for by every live worker that has the pack's nodes (verified_packs).
        self.verified_node_packs: frozenset[str] = frozenset()
        self._published: frozenset[WorkerPacks] = frozenset()
        self._placed: dict[str, tuple[FileSource, ...]] = {}
        # Every option of the merged catalog that has the shape of a placed name.
        self._placed_options: frozenset[str] = frozenset()
        # The merged catalog without each set of hidden files asked for (reset with it).
        self._narrowed: dict[frozenset[str], NodeCatalog] = {}

    async def for_tier(self, may_fetch: HostCheck) -> tuple[NodeCatalog | None, frozenset[str]]:
        """The catalog as a tier that passes `may_fetch` sees it, and the placed names the
        tier may use (those whose recorded sources it could fetch). Any other option of
        the placed-name shape is left out of the catalog."""
        merged = await self.current()
        usable = frozenset(name for name, sources in self._placed.items()
                           if any(may_fetch(source.host) for source in sources))
        hidden = self._placed_options - usable
        if merged is None or not hidden:
            return merged, usable
        if hidden not in self._narrowed:
            kept = self._narrowed if len(self._narrowed) < _MAX_NARROWED else {}
            self._narrowed = {**kept, hidden: merged.without_options(hidden)}
        return self._narrowed[hidden], usable

    async def current(self) -> NodeCatalog | None:
        """None until some worker has published a catalog."""
        now = time.monotonic()
        if now - self._checked_at < self._refresh_seconds:
            return self._merged
        self._checked_at = now
        since = time.time() - self._max_age
        published = frozenset(await self._store.workers.worker_packs(since))
        self._placed = await self._store.models.placed_files(since)
        hashes = frozenset(worker.catalog_hash for worker in published)
        if hashes != self._hashes:
            await self._load(hashes)
            self._narrowed = {}
        if published != self._published:
            packs_in = {digest: _packs_of(catalog) for digest, catalog in self._parsed.items()}
            self.verified_node_packs = verified_packs(published, packs_in)
            self._published = published
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
        self._placed_options = _placed_options(self._merged)


def verified_packs(workers: Iterable[WorkerPacks], packs_in: Mapping[str, frozenset[str]]
                   ) -> frozenset[str]:
    """The packs that some worker publishes as verified, none flags, and every worker whose
    catalog (`packs_in`: the packs each catalog's nodes come from) has them vouches for. A
    worker whose catalog is unknown might have any pack: it keeps only those it vouches for."""
    workers = list(workers)
    flagged = frozenset().union(*(worker.packs.flagged for worker in workers))
    kept = frozenset().union(*(worker.packs.verified for worker in workers)) - flagged
    for worker in workers:
        carried = packs_in.get(worker.catalog_hash)
        kept = (kept & worker.packs.verified if carried is None
                else kept - (carried - worker.packs.verified))
    return kept


def _placed_options(catalog: NodeCatalog | None) -> frozenset[str]:
    """The options of any input of `catalog` that have the shape of a placed name."""
    if catalog is None:
        return frozenset()
    return frozenset(option for spec in catalog.nodes.values()
                     for item in spec.inputs.values() for option in item.options or ()
                     if is_placed_name(option))


def _packs_of(catalog: NodeCatalog) -> frozenset[str]:
    return frozenset(pack for spec in catalog.nodes.values() for pack in spec.node_packs
                     if pack is not None)
