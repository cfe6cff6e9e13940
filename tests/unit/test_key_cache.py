"""The API process's key cache: bounded, short-lived without notifications, never keeps a
row read before an eviction, and still checks the secret on every request."""

from __future__ import annotations

from pathlib import Path

import pytest

from comfy_serverless.auth.authenticator import KeyAuthenticator
from comfy_serverless.auth.key_cache import CacheBounds, KeyCache
from comfy_serverless.auth.keys import issue_key
from comfy_serverless.errors import AuthenticationFailed
from comfy_serverless.store.store import Store


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_unknown_prefixes_of_a_brute_force_stay_within_the_bound() -> None:
    cache = KeyCache(CacheBounds(max_keys=4, max_unknown=16))
    for attempt in range(10_000):
        cache.store(f"comfyui_sk_{attempt:012d}", None, cache.generation())
    assert cache.sizes == (0, 16)
    assert cache.lookup("comfyui_sk_000000009999").known
    assert not cache.lookup("comfyui_sk_000000000000").known  # the oldest went first


def test_known_keys_are_bounded_least_recently_used_first() -> None:
    cache = KeyCache(CacheBounds(max_keys=2))
    first, second, third = (issue_key("secret", "pro").record for _ in range(3))
    for record in (first, second):
        cache.store(record.prefix, record, cache.generation())
    assert cache.lookup(first.prefix).record == first  # first is now the most recent
    cache.store(third.prefix, third, cache.generation())
    assert cache.sizes == (2, 0)
    assert not cache.lookup(second.prefix).known
    assert cache.lookup(first.prefix).known
    assert cache.lookup(third.prefix).known


def test_without_notifications_an_entry_lives_at_most_one_second() -> None:
    clock = _Clock()
    cache = KeyCache(clock=clock)
    record = issue_key("secret", "pro").record
    cache.store(record.prefix, record, cache.generation())
    clock.now += 0.99
    assert cache.lookup(record.prefix).known
    clock.now += 0.02
    assert not cache.lookup(record.prefix).known


def test_while_listening_an_eviction_acts_at_once_and_a_lost_listen_empties_all() -> None:
    """A notification evicts at once; an entry still lives at most 1 s, since a half-open
    LISTEN connection loses notifications without a sign."""
    clock = _Clock()
    cache = KeyCache(clock=clock)
    cache.set_listening(True)
    kept, evicted = issue_key("secret", "pro").record, issue_key("secret", "pro").record
    for record in (kept, evicted):
        cache.store(record.prefix, record, cache.generation())
    clock.now += 0.5
    cache.evict(evicted.prefix)
    assert cache.lookup(kept.prefix).known
    assert not cache.lookup(evicted.prefix).known
    clock.now += 0.6
    assert not cache.lookup(kept.prefix).known, "past 1 s even while listening"
    cache.store(kept.prefix, kept, cache.generation())
    cache.set_listening(False)
    assert cache.sizes == (0, 0)


def test_a_row_read_before_an_eviction_is_not_stored() -> None:
    cache = KeyCache()
    record = issue_key("secret", "pro").record
    generation = cache.generation()  # the read starts
    cache.evict(record.prefix)  # a revocation's notification arrives meanwhile
    cache.store(record.prefix, record, generation)  # the read's (stale) row comes back
    assert not cache.lookup(record.prefix).known


async def test_cached_authentication_reads_once_checks_the_secret_each_time_and_touches_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = await Store.open(f"sqlite:///{tmp_path / 'k.db'}")
    await store.migrate()
    issued = issue_key("secret", "pro")
    await store.access.create_api_key(issued.record)
    reads: list[str] = []
    touches: list[str] = []
    read_row, touch_row = store.access.api_key_by_prefix, store.access.touch_api_key

    async def counted_read(prefix: str) -> object:
        reads.append(prefix)
        return await read_row(prefix)

    async def counted_touch(key_id: str, now: float) -> None:
        touches.append(key_id)
        await touch_row(key_id, now)

    monkeypatch.setattr(store.access, "api_key_by_prefix", counted_read)
    monkeypatch.setattr(store.access, "touch_api_key", counted_touch)
    keys = KeyAuthenticator(store)
    for _ in range(50):
        assert (await keys.authenticate(issued.plaintext)).id == issued.record.id
    wrong = issued.plaintext[:-1] + ("A" if issued.plaintext[-1] != "A" else "B")
    with pytest.raises(AuthenticationFailed):
        await keys.authenticate(wrong)  # same prefix, cached row: the hash still decides
    assert len(reads) == 1
    assert touches == [issued.record.id]
    await store.close()


async def test_a_revocation_through_the_admin_path_applies_at_once_in_this_process(
    tmp_path: Path,
) -> None:
    store = await Store.open(f"sqlite:///{tmp_path / 'k.db'}")
    await store.migrate()
    issued = issue_key("secret", "pro")
    await store.access.create_api_key(issued.record)
    keys = KeyAuthenticator(store)
    await keys.authenticate(issued.plaintext)
    await store.access.revoke(issued.record.id, 1.0)
    keys.forget_all()
    with pytest.raises(AuthenticationFailed, match="revoked"):
        await keys.authenticate(issued.plaintext)
    await store.close()
