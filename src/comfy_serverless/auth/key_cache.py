"""The API process's cache of API key rows, by lookup prefix, so that authenticating a
request costs no database round trip.

Only the row is cached: the secret's hash is still compared on every request. An entry is
trusted for as long as a change to the key is sure to have evicted it:

- while the store's LISTEN connection is up (PostgreSQL), every change to a key (revoke,
  rotate, new limits or tier, deletion) sends a notification that evicts its prefixes in
  every replica at once; entries still live at most `listening_ttl` (1 s), because a
  half-open LISTEN connection (an idle timeout in a NAT, a failover without a reset) loses
  notifications without any sign;
- otherwise (SQLite, or PostgreSQL between a lost LISTEN connection and its return) an
  entry lives `fallback_ttl` (1 s): the bound on how long a change made by another process
  goes unseen. The process's own admin routes evict at once.

A change of the LISTEN state empties the cache, since notifications may have been missed.
A read that raced with an eviction is not stored (the generation check), so a row read
before a revocation cannot outlive it. Both maps are bounded LRUs: unknown prefixes (a
brute force) evict each other and never grow memory past `max_unknown` entries.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from comfy_serverless.store.records import ApiKeyRecord

__all__ = ["CacheBounds", "KeyCache", "Lookup"]

Value = TypeVar("Value")


@dataclass(frozen=True)
class CacheBounds:
    max_keys: int = 10_000
    max_unknown: int = 1_024
    fallback_ttl: float = 1.0
    listening_ttl: float = 1.0


@dataclass(frozen=True)
class Lookup:
    """A cache answer: `known` says the cache answered (a row, or None for no such key)."""
    known: bool
    record: ApiKeyRecord | None = None


_MISS = Lookup(known=False)


class _ExpiringLru(Generic[Value]):
    """At most `capacity` entries, each with its expiry; the least recently used goes first."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._entries: OrderedDict[str, tuple[float, Value]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, name: str, now: float) -> tuple[bool, Value | None]:
        entry = self._entries.get(name)
        if entry is None:
            return False, None
        if entry[0] <= now:
            del self._entries[name]
            return False, None
        self._entries.move_to_end(name)
        return True, entry[1]

    def put(self, name: str, value: Value, expires: float) -> None:
        self._entries[name] = (expires, value)
        self._entries.move_to_end(name)
        while len(self._entries) > self._capacity:
            self._entries.popitem(last=False)

    def drop(self, name: str) -> None:
        self._entries.pop(name, None)

    def clear(self) -> None:
        self._entries.clear()


class KeyCache:
    def __init__(self, bounds: CacheBounds | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.bounds = bounds or CacheBounds()
        self._clock = clock
        self._keys: _ExpiringLru[ApiKeyRecord] = _ExpiringLru(self.bounds.max_keys)
        self._unknown: _ExpiringLru[None] = _ExpiringLru(self.bounds.max_unknown)
        self._generation = 0
        self._listening = False

    @property
    def sizes(self) -> tuple[int, int]:
        """(cached keys, cached unknown prefixes)."""
        return len(self._keys), len(self._unknown)

    def lookup(self, prefix: str) -> Lookup:
        now = self._clock()
        found, record = self._keys.get(prefix, now)
        if found:
            return Lookup(True, record)
        unknown, _ = self._unknown.get(prefix, now)
        return Lookup(True, None) if unknown else _MISS

    def generation(self) -> int:
        """Taken before a database read; `store` refuses the row if an eviction came since."""
        return self._generation

    def store(self, prefix: str, record: ApiKeyRecord | None, generation: int) -> None:
        if generation != self._generation:
            return
        ttl = self.bounds.listening_ttl if self._listening else self.bounds.fallback_ttl
        expires = self._clock() + ttl
        if record is None:
            self._unknown.put(prefix, None, expires)
        else:
            self._keys.put(prefix, record, expires)

    def evict(self, prefix: str) -> None:
        """A key with this prefix changed (or was created, or its prefix was replaced)."""
        self._generation += 1
        self._keys.drop(prefix)
        self._unknown.drop(prefix)

    def evict_all(self) -> None:
        self._generation += 1
        self._keys.clear()
        self._unknown.clear()

    @property
    def listening(self) -> bool:
        """Whether notifications evict entries now (the store's LISTEN connection is up)."""
        return self._listening

    def set_listening(self, listening: bool) -> None:
        """The LISTEN connection came up or went down: what was cached may have missed a
        notification (or was cached for the other lifetime), so it all goes."""
        self._listening = listening
        self.evict_all()
