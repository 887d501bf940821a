"""What every cache store must do (leadfactory.llm.cache.store.CacheStore).

Each test runs against every implementation through the ``open_store`` fixture; a new
backend (Redis, say) is one more fixture parameter, and done when these pass. Times are
plain numbers: a store never reads a clock, the cache tells it the time.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from leadfactory.llm.cache.sqlite_store import SQLiteStore
from leadfactory.llm.cache.store import CacheStore, Entry, Hit, MemoryStore
from tests.services import require_redis

T0 = 1_700_000_000.0


@pytest.fixture(params=["sqlite", "memory", "redis"])
def open_store(request, tmp_path) -> Callable[[], CacheStore]:
    """Opens a handle on one store; every handle of a test sees the same entries."""
    opened: list[CacheStore] = []
    if request.param == "sqlite":

        def new() -> CacheStore:
            return SQLiteStore(tmp_path / "cache" / "cache.db")
    elif request.param == "redis":
        from leadfactory.llm.cache.redis_store import RedisStore
        from leadfactory.llm.redis_link import RedisLink

        prefix = request.getfixturevalue("redis_prefix")
        url = require_redis()

        def new() -> CacheStore:
            return RedisStore(RedisLink(url, prefix))
    else:
        shared = MemoryStore()

        def new() -> CacheStore:
            return shared

    def open_one() -> CacheStore:
        store = new()
        opened.append(store)
        return store

    yield open_one
    for store in opened:
        store.close()


@pytest.fixture
def store(open_store) -> CacheStore:
    return open_store()


def entry(key: str, text: str = "B2B", *, at: float = T0, ttl: float | None = 60, **extra):
    value = {"choices": [{"message": {"role": "assistant", "content": text}}], **extra}
    return Entry(
        key,
        value,
        at,
        None if ttl is None else at + ttl,
        provider="openai",
        model="gpt-4o-mini",
        endpoint="openai gpt-4o-mini https://api.example.com/v1",
    )


def keys(store: CacheStore, *candidates: str) -> set[str]:
    return {key for key in candidates if store.get(key) is not None}


def test_is_a_cache_store(store):
    assert isinstance(store, CacheStore)
    assert isinstance(store.errors, tuple)


def test_round_trip_keeps_every_field(store):
    assert store.get("k") is None
    stored = entry("k", "Müller GmbH")
    store.set([stored])
    got = store.get("k")
    assert got is not None
    assert got.value == stored.value
    assert (got.key, got.created_at, got.expires_at) == ("k", T0, T0 + 60)
    assert (got.provider, got.model, got.endpoint) == (
        stored.provider,
        stored.model,
        stored.endpoint,
    )


def test_no_expiry_round_trips(store):
    store.set([entry("forever", ttl=None)])
    got = store.get("forever")
    assert got is not None and got.expires_at is None and not got.expired(T0 + 1e9)


def test_text_that_is_not_valid_utf8_round_trips(store):
    store.set([entry("k", "lone surrogate \ud800")])
    assert store.get("k").value == entry("k", "lone surrogate \ud800").value


def test_set_replaces_and_takes_batches(store):
    store.set([entry("a", "old"), entry("b")])
    store.set([entry("a", "new", at=T0 + 1)])
    assert store.get("a").value == entry("a", "new").value
    assert store.get("a").created_at == T0 + 1
    assert store.count() == 2


def test_expired_entries_are_returned_and_not_counted_as_live(store):
    """The cache decides about expiry; the store only reports."""
    store.set([entry("old", ttl=10), entry("new", at=T0 + 20, ttl=10)])
    assert store.get("old") is not None and store.get("old").expired(T0 + 20)
    assert store.count() == 2
    assert store.count(T0 + 20) == 1
    assert store.count(T0 + 5) == 2


def test_delete_and_clear(store):
    store.set([entry(f"k{i}") for i in range(3)])
    store.delete("k0")
    store.delete("missing")
    assert keys(store, "k0", "k1", "k2") == {"k1", "k2"}
    assert store.clear() == 2
    assert store.count() == 0 and store.get("k1") is None
    assert store.clear() == 0


def test_every_handle_sees_the_same_entries(open_store):
    writer, reader = open_store(), open_store()
    assert reader.get("k") is None
    writer.set([entry("k")])
    assert reader.get("k") is not None
    reader.delete("k")
    assert writer.get("k") is None


def test_evict_removes_expired_entries_first(store):
    store.set([entry("old1", ttl=5), entry("old2", ttl=5)])
    store.set([entry("new1", at=T0 + 10), entry("new2", at=T0 + 10)])
    eviction = store.evict(T0 + 10, max_entries=3, target=2)
    assert eviction.expired == 2 and eviction.evicted == () and eviction.remaining == 2
    assert keys(store, "old1", "old2", "new1", "new2") == {"new1", "new2"}


def test_evict_keeps_the_recently_used(store):
    for i in range(6):
        store.set([entry(f"k{i}", at=T0 + i)])
    store.record_hits([Hit("k0", 3, T0 + 10), Hit("k1", 1, T0 + 11), Hit("gone", 1, T0 + 12)])
    eviction = store.evict(T0 + 12, max_entries=5, target=4)
    assert sorted(eviction.evicted) == ["k2", "k3"] and eviction.remaining == 4
    assert keys(store, *(f"k{i}" for i in range(6))) == {"k0", "k1", "k4", "k5"}


def test_evict_within_the_bound_removes_nothing_live(store):
    store.set([entry(f"k{i}", at=T0 + i) for i in range(3)])
    eviction = store.evict(T0 + 3, max_entries=3, target=2)
    assert (eviction.expired, eviction.evicted, eviction.remaining) == (0, (), 3)


def test_a_replaced_entry_counts_as_new(store):
    store.set([entry("a", at=T0), entry("b", at=T0 + 1)])
    store.set([entry("a", at=T0 + 2)])
    assert store.evict(T0 + 2, max_entries=1, target=1).evicted == ("b",)


def test_close_then_use_again(store):
    store.set([entry("k")])
    store.close()
    assert store.get("k") is not None
    store.set([entry("j")])
    assert store.count() == 2


def test_after_fork_starts_afresh_and_keeps_the_entries(store):
    store.set([entry("k")])
    store.after_fork()  # as in a forked child: the parent's handles are left alone
    assert store.get("k") is not None
    store.set([entry("j")])
    assert store.count() == 2
