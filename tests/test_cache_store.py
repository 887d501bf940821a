"""ResponseCache's behaviour, with a file and memory-only: round trips, TTL, eviction.

Stored and returned answers are independent copies, only JSON objects are stored, text
that is not valid UTF-8 is kept escaped; delete, clear and replace; entries expire after
their TTL (counted from the latest set, never with None) on a fake clock; sizes are
validated; eviction keeps the recently used, in batches, expired entries first; the
memory-only mode and the memory front are bounded LRUs.
"""

from __future__ import annotations

import pytest

from leadfactory.llm.cache import ResponseCache, cache_key

# fixtures, imported so that pytest finds them in this module
from .cache_fixtures import clock as clock
from .cache_fixtures import db_path as db_path
from .cache_fixtures import make_request, response, rows


@pytest.fixture(params=["disk", "memory"])
def any_cache(request, db_path, clock):
    path = db_path if request.param == "disk" else None
    cache = ResponseCache(path, ttl=60, clock=clock)
    yield cache
    cache.close()


# -- ResponseCache: basics ----------------------------------------------------------


def test_round_trip_and_miss(any_cache):
    key = cache_key(make_request())
    assert any_cache.get(key) is None
    any_cache.set(key, response())
    assert any_cache.get(key) == response()
    stats = any_cache.stats()
    assert (stats["hits"], stats["misses"], stats["entries"]) == (1, 1, 1)


def test_returned_responses_are_independent_copies(any_cache, clock):
    original = response()
    any_cache.set("k", original)
    original["choices"][0]["message"]["content"] = "changed after set"

    first = any_cache.get("k")
    assert first["choices"][0]["message"]["content"] == "B2B"
    first["choices"][0]["message"]["content"] = "mutated"
    first["usage"]["total_tokens"] = -1
    first["choices"].append({"index": 1})
    first["new"] = True

    assert any_cache.get("k") == response()  # memory hit
    if any_cache.path is not None:  # disk hit, through a second object on the same file
        other = ResponseCache(any_cache.path, clock=clock)
        hit = other.get("k")
        hit["choices"][0]["message"]["content"] = "mutated"
        assert other.get("k") == response()
        other.close()


def test_set_refuses_what_is_not_a_json_object(any_cache):
    for bad in (None, "text", ["a"], 42):
        with pytest.raises(ValueError, match="dicts"):
            any_cache.set("k", bad)
    with pytest.raises(ValueError, match="JSON-serialisable"):
        any_cache.set("k", {"created": object()})
    assert any_cache.get("k") is None
    with pytest.raises(TypeError):
        any_cache.get("")


def test_text_that_is_not_valid_utf8_is_stored_escaped(any_cache, clock):
    odd = response("lone surrogate \ud800, Müller GmbH")
    any_cache.set("k", odd)
    if any_cache.path is not None:
        with ResponseCache(any_cache.path, clock=clock) as other:
            assert other.get("k") == odd
    assert any_cache.stats()["errors"] == 0


def test_delete(any_cache):
    any_cache.set("a", response("A"))
    any_cache.set("b", response("B"))
    any_cache.delete("a")
    any_cache.delete("missing")
    assert any_cache.get("a") is None
    assert any_cache.get("b") == response("B")


def test_clear_empties_memory_and_file(any_cache, clock):
    for i in range(3):
        any_cache.set(f"k{i}", response(str(i)))
    assert any_cache.get("k0") is not None  # in memory too
    assert any_cache.clear() == 3
    assert [any_cache.get(f"k{i}") for i in range(3)] == [None] * 3
    assert any_cache.stats()["entries"] == 0
    if any_cache.path is not None:
        assert rows(any_cache.path) == []
        with ResponseCache(any_cache.path, clock=clock) as other:
            assert other.get("k0") is None


def test_replacing_an_entry(any_cache):
    any_cache.set("k", response("old"))
    any_cache.set("k", response("new"))
    assert any_cache.get("k") == response("new")
    assert any_cache.stats()["entries"] == 1


# -- TTL ----------------------------------------------------------------------------


@pytest.mark.parametrize("memory_entries", [256, 0], ids=["memory-front", "disk-only"])
def test_ttl_expiry_from_file(db_path, clock, memory_entries):
    cache = ResponseCache(db_path, ttl=10, memory_entries=memory_entries, clock=clock)
    cache.set("k", response())
    clock.advance(9.999)
    assert cache.get("k") == response()
    clock.advance(0.001)
    assert cache.get("k") is None
    assert rows(db_path) == []  # deleted lazily, on the read that found it expired
    assert cache.stats()["expired"] == 1
    cache.close()


def test_ttl_expiry_in_memory_only_mode(clock):
    cache = ResponseCache(None, ttl=10, clock=clock)
    cache.set("k", response())
    clock.advance(9.5)
    assert cache.get("k") == response()
    clock.advance(0.5)
    assert cache.get("k") is None
    assert cache.stats()["entries"] == 0


def test_ttl_counts_from_the_latest_set(any_cache, clock):
    any_cache.set("k", response("1"))
    clock.advance(50)
    any_cache.set("k", response("2"))
    clock.advance(50)
    assert any_cache.get("k") == response("2")


def test_ttl_none_never_expires(db_path, clock):
    cache = ResponseCache(db_path, ttl=None, clock=clock)
    cache.set("k", response())
    clock.advance(10 * 365 * 86400)
    assert cache.get("k") == response()
    cache.close()
    with ResponseCache(db_path, ttl=None, clock=clock) as reopened:
        assert reopened.get("k") == response()


@pytest.mark.parametrize("ttl", [-1, 0, float("nan")])
def test_ttl_must_be_positive_or_none(ttl):
    with pytest.raises(ValueError, match="ttl must be a positive number"):
        ResponseCache(None, ttl=ttl)


@pytest.mark.parametrize(
    "kwargs", [{"max_entries": 0}, {"max_entries": 1.5}, {"memory_entries": -1}]
)
def test_sizes_are_validated(kwargs):
    with pytest.raises(ValueError):
        ResponseCache(None, **kwargs)


# -- eviction -------------------------------------------------------------------------


def test_eviction_keeps_the_recently_used(db_path, clock):
    cache = ResponseCache(db_path, max_entries=10, clock=clock)
    for i in range(10):
        cache.set(f"k{i}", response(str(i)))
        clock.advance(1)
    for i in (0, 1, 2):  # memory hits: their use reaches the file in a batch, before a sweep
        assert cache.get(f"k{i}") is not None
        clock.advance(1)
    cache.set("k10", response("10"))  # 11 rows: sweep down to 90% of the bound

    kept = {key for key, _ in rows(db_path)}
    assert kept == {"k0", "k1", "k2", "k5", "k6", "k7", "k8", "k9", "k10"}
    assert cache.get("k3") is None and cache.get("k4") is None  # gone from memory too
    assert cache.get("k0") == response("0")
    assert cache.stats()["evictions"] == 2
    cache.close()


def test_eviction_is_batched(db_path, clock):
    cache = ResponseCache(db_path, max_entries=100, clock=clock)
    for i in range(101):
        cache.set(f"k{i}", response())
        clock.advance(1)
    assert len(rows(db_path)) == 90  # one sweep made room for ten more sets
    for i in range(101, 111):
        cache.set(f"k{i}", response())
        clock.advance(1)
    assert len(rows(db_path)) == 100
    assert cache.stats()["evictions"] == 11
    cache.close()


def test_sweep_removes_expired_entries_first(db_path, clock):
    cache = ResponseCache(db_path, ttl=5, max_entries=3, clock=clock)
    cache.set("old1", response())
    cache.set("old2", response())
    clock.advance(10)
    cache.set("new1", response())
    cache.set("new2", response())
    assert {key for key, _ in rows(db_path)} == {"new1", "new2"}
    assert cache.stats()["evictions"] == 0
    cache.close()


def test_memory_only_mode_is_an_lru_of_max_entries(tmp_path, clock):
    cache = ResponseCache(None, max_entries=3, memory_entries=1, clock=clock)
    for key in "abc":
        cache.set(key, response(key))
    assert cache.get("a") is not None
    cache.set("d", response("d"))
    assert [cache.get(key) is not None for key in "abcd"] == [True, False, True, True]
    stats = cache.stats()
    assert stats["path"] is None and stats["evictions"] == 1 and stats["entries"] == 3
    assert list(tmp_path.iterdir()) == []


def test_memory_front_is_bounded(db_path, clock):
    cache = ResponseCache(db_path, memory_entries=2, clock=clock)
    for key in "abc":
        cache.set(key, response(key))
    assert cache.stats()["memory_entries"] == 2
    assert cache.get("a") == response("a")  # from the file
    assert cache.get("a") == response("a")  # promoted to memory
    stats = cache.stats()
    assert (stats["disk_hits"], stats["memory_hits"], stats["entries"]) == (1, 1, 3)
    cache.close()
