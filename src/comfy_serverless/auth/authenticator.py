"""Authentication in an API process: the key's row from the in-process KeyCache (see
key_cache.py for when a change reaches it), its secret compared on every request, and its
last-used time written at most once per TOUCH_INTERVAL per key, so that a request usually
costs neither a read nor a write.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from comfy_serverless.auth.key_cache import KeyCache
from comfy_serverless.auth.keys import TOUCH_INTERVAL, lookup_prefix, verify
from comfy_serverless.errors import AuthenticationFailed
from comfy_serverless.store.records import ApiKeyRecord
from comfy_serverless.store.store import Store

__all__ = ["KeyAuthenticator"]


class _TouchThrottle:
    """When this process last wrote each key's last_used_at. Bounded: a key forgotten here
    only costs one early write."""

    def __init__(self, capacity: int, clock: Callable[[], float]) -> None:
        self._capacity = capacity
        self._clock = clock
        self._written: OrderedDict[str, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._written)

    def due(self, record: ApiKeyRecord) -> float | None:
        """The time to write now, or None while the last write is recent enough."""
        now = self._clock()
        last = max(self._written.get(record.id, 0.0), record.last_used_at or 0.0)
        if now - last <= TOUCH_INTERVAL:
            return None
        self._written[record.id] = now
        self._written.move_to_end(record.id)
        while len(self._written) > self._capacity:
            self._written.popitem(last=False)
        return now


class KeyAuthenticator:
    def __init__(self, store: Store, cache: KeyCache | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self.cache = cache or KeyCache()
        self._touches = _TouchThrottle(self.cache.bounds.max_keys, clock)

    async def authenticate(self, plaintext: str) -> ApiKeyRecord:
        prefix = lookup_prefix(plaintext)
        if prefix is None:
            raise AuthenticationFailed()
        record = verify(await self._row(prefix), plaintext)
        touch_at = self._touches.due(record)
        if touch_at is not None:
            await self._store.access.touch_api_key(record.id, touch_at)
        return record

    async def _row(self, prefix: str) -> ApiKeyRecord | None:
        cached = self.cache.lookup(prefix)
        if cached.known:
            return cached.record
        generation = self.cache.generation()
        record = await self._store.access.api_key_by_prefix(prefix)
        self.cache.store(prefix, record, generation)
        return record

    def forget_all(self) -> None:
        """This process changed a key (its admin routes): the change applies at once here,
        before any notification comes back."""
        self.cache.evict_all()

    @asynccontextmanager
    async def listening(self) -> AsyncIterator[None]:
        """Evict keys as other processes change them (PostgreSQL NOTIFY), while the block
        runs; on SQLite, entries simply live the cache's fallback TTL."""
        async with self._store.access.listen_for_key_changes(
                on_change=self.cache.evict, on_listening=self.cache.set_listening):
            yield
