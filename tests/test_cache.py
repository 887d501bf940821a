"""ResponseCache, cache_key and SingleFlight. Every file lives under tmp_path; time is a
fake clock, so no test sleeps to check a TTL."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import subprocess
import sys
import threading
import types
from decimal import Decimal

import pytest

from leadfactory.llm import cache as cache_module
from leadfactory.llm.cache import ResponseCache, SingleFlight, cache_key
from leadfactory.llm.cache import request_key as request_key_module
from leadfactory.llm.cache import singleflight as singleflight_module

WAIT = 10.0  # seconds a test waits for another thread before failing (never reached)


class FakeClock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make_request(**overrides):
    base = {
        "messages": [{"role": "user", "content": "Classify: ACME Corp"}],
        "model": "openai/gpt-4o-mini",
        "temperature": 0.7,
        "max_tokens": 100,
    }
    base.update(overrides)
    return base


def response(text: str = "B2B", **extra):
    return {
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12},
        **extra,
    }


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "cache" / "cache.db"


@pytest.fixture(params=["disk", "memory"])
def any_cache(request, db_path, clock):
    path = db_path if request.param == "disk" else None
    cache = ResponseCache(path, ttl=60, clock=clock)
    yield cache
    cache.close()


def rows(path):
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return conn.execute("SELECT key, hits FROM responses ORDER BY key").fetchall()


# -- cache_key --------------------------------------------------------------------


def test_key_is_a_sha256_hex_digest():
    key = cache_key(make_request())
    assert len(key) == 64 and int(key, 16) >= 0


def test_key_ignores_dict_order():
    a = {
        "messages": [{"role": "user", "content": "hi"}],
        "temperature": 0.2,
        "model": "m",
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "strict": True}},
    }
    b = {
        "response_format": {"json_schema": {"strict": True, "name": "x"}, "type": "json_schema"},
        "model": "m",
        "temperature": 0.2,
        "messages": [{"content": "hi", "role": "user"}],
    }
    assert cache_key(a) == cache_key(b)


@pytest.mark.parametrize("same", [0.70, 7e-1, Decimal("0.70"), Decimal("0.7")])
def test_key_normalises_floats(same):
    assert cache_key(make_request(temperature=0.7)) == cache_key(make_request(temperature=same))


def test_key_ignores_whitespace_and_number_spelling_in_json_requests():
    """Requests read from JSON text hash alike however the text was laid out."""
    compact = '{"messages":[{"role":"user","content":"hi"}],"temperature":0.7,"top_p":1}'
    spaced = """{
        "top_p" : 1.0 ,
        "temperature" :  7.0e-1,
        "messages" : [ { "content" : "hi", "role" : "user" } ]
    }"""
    assert cache_key(json.loads(compact)) == cache_key(json.loads(spaced))
    assert cache_key(json.loads(compact)) != cache_key(json.loads(compact.replace("0.7", "0.71")))


def test_key_treats_ints_equal_to_floats_alike():
    assert cache_key(make_request(temperature=1)) == cache_key(make_request(temperature=1.0))
    assert cache_key(make_request(temperature=0)) == cache_key(make_request(temperature=-0.0))
    assert cache_key(make_request(max_tokens=100)) == cache_key(make_request(max_tokens=100.0))


def test_key_keeps_booleans_and_large_ints_exact():
    assert cache_key(make_request(logprobs=True)) != cache_key(make_request(logprobs=1))
    assert cache_key(make_request(seed=2**53)) != cache_key(make_request(seed=2**53 + 1))
    assert cache_key(make_request(seed=10**400)) != cache_key(make_request(seed=10**400 + 1))


def test_key_drops_none_values_at_every_level():
    assert cache_key(make_request(model=None, seed=None)) == cache_key(
        {k: v for k, v in make_request().items() if k != "model"}
    )
    with_none = make_request(messages=[{"role": "user", "content": "hi", "name": None}])
    assert cache_key(with_none) == cache_key(
        make_request(messages=[{"role": "user", "content": "hi"}])
    )


def test_key_treats_tuples_as_lists():
    assert cache_key(make_request(stop=("\n", "END"))) == cache_key(
        make_request(stop=["\n", "END"])
    )


@pytest.mark.parametrize(
    "change",
    [
        {"temperature": 0.8},
        {"messages": [{"role": "user", "content": "Classify: ACME Corp."}]},
        {"messages": [{"role": "system", "content": "Classify: ACME Corp"}]},
        {"model": "anthropic/claude-3-5-haiku"},
        {"model": None},
        {"max_tokens": 101},
        {"top_p": 0.9},
        {"stop": ["\n"]},
        {"seed": 7},
    ],
)
def test_key_changes_with_what_determines_the_answer(change):
    assert cache_key(make_request(**change)) != cache_key(make_request())


def test_key_hashes_a_version_prefix(monkeypatch):
    before = cache_key(make_request())
    monkeypatch.setattr(request_key_module, "_KEY_PREFIX", "leadfactory-llm/cache-key/v999\n")
    assert cache_key(make_request()) != before


def test_key_hashes_pydantic_models_as_their_data():
    pydantic = pytest.importorskip("pydantic")

    class Lead(pydantic.BaseModel):
        name: str
        score: float

    assert cache_key({"x": Lead(name="a", score=1)}) == cache_key({"x": {"name": "a", "score": 1}})
    assert cache_key({"response_format": Lead}) != cache_key({"response_format": "Lead"})


def test_key_refuses_what_json_cannot_express():
    with pytest.raises(TypeError, match="cannot hash a object"):
        cache_key(make_request(stop=object()))
    with pytest.raises(TypeError, match="keys must be strings"):
        cache_key({"logit_bias": {50256: -100}})
    with pytest.raises(TypeError, match="mapping"):
        cache_key([("model", "m")])


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


# -- the file -------------------------------------------------------------------------


def test_hit_after_restart(db_path, clock):
    first = ResponseCache(db_path, clock=clock)
    first.set(cache_key(make_request()), response(), provider="openai")
    first.close()

    second = ResponseCache(db_path, clock=clock)
    assert second.get(cache_key(make_request())) == response()
    assert second.stats()["disk_hits"] == 1
    second.close()


def test_hit_after_restart_of_a_real_process(db_path):
    """A child process stores an entry and dies without closing; a new object here reads it."""
    code = (
        "import os, sys; from leadfactory.llm.cache import ResponseCache;"
        "cache = ResponseCache(sys.argv[1]); cache.set(sys.argv[2], {'answer': 42});"
        "os._exit(0)"
    )
    key = cache_key(make_request())
    subprocess.run([sys.executable, "-c", code, str(db_path), key], check=True, timeout=60)

    fresh = ResponseCache(db_path)
    assert fresh.get(key) == {"answer": 42}
    assert fresh.get(cache_key(make_request(temperature=0.8))) is None
    assert (fresh.stats()["disk_hits"], fresh.stats()["misses"]) == (1, 1)
    fresh.close()


def test_two_objects_share_one_file(db_path, clock):
    writer = ResponseCache(db_path, clock=clock)
    reader = ResponseCache(db_path, clock=clock)
    assert reader.get("k") is None
    writer.set("k", response())
    assert reader.get("k") == response()
    writer.close()
    reader.close()


def test_schema_and_columns(db_path, clock):
    cache = ResponseCache(db_path, ttl=60, clock=clock)
    cache.set("k", response(), provider="openai", endpoint="openai gpt-4o-mini https://x.test")
    cache.get("k")
    clock.advance(5)
    cache.get("k")
    cache.close()

    conn = sqlite3.connect(db_path)
    conn.row_factory = sqlite3.Row
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    columns = {row["name"]: row["type"] for row in conn.execute("PRAGMA table_info(responses)")}
    assert columns == {
        "key": "TEXT",
        "created_at": "REAL",
        "expires_at": "REAL",
        "provider": "TEXT",
        "model": "TEXT",
        "response": "TEXT",
        "hits": "INTEGER",
        "last_hit_at": "REAL",
        "endpoint": "TEXT",
    }
    indexed = {
        conn.execute(f"PRAGMA index_info({row['name']!r})").fetchone()["name"]
        for row in conn.execute("PRAGMA index_list(responses)")
        if row["origin"] == "c"
    }
    assert indexed == {"expires_at", "last_hit_at"}
    row = dict(conn.execute("SELECT * FROM responses").fetchone())
    assert json.loads(row.pop("response")) == response()
    assert row == {
        "key": "k",
        "created_at": clock.now - 5,
        "expires_at": clock.now - 5 + 60,
        "provider": "openai",
        "model": "gpt-4o-mini",
        "hits": 2,  # written in a batch, here by close()
        "last_hit_at": clock.now,
        "endpoint": "openai gpt-4o-mini https://x.test",
    }
    view = dict(conn.execute("SELECT * FROM cache_entries").fetchone())
    assert view["created"] == "2023-11-14T22:13:20Z" and view["hits"] == 2
    conn.close()


def test_migrations_are_recorded_once(db_path, clock):
    for _ in range(2):
        cache = ResponseCache(db_path, clock=clock)
        cache.set("k", response())
        cache.close()
    with contextlib.closing(sqlite3.connect(db_path)) as conn:
        applied = conn.execute(
            "SELECT migration_set, name FROM _sqlite_migrations ORDER BY id"
        ).fetchall()
    assert applied == [
        ("leadfactory-llm-cache", "m001_responses"),
        ("leadfactory-llm-cache", "m002_endpoint"),
    ]


@pytest.mark.parametrize("stored", ["{not json", "[1, 2]", "null"])
def test_corrupt_row_is_a_miss_and_deleted(db_path, clock, stored):
    cache = ResponseCache(db_path, clock=clock)
    cache.set("k", response())
    cache.close()
    with contextlib.closing(sqlite3.connect(db_path)) as conn, conn:
        conn.execute("UPDATE responses SET response = ? WHERE key = 'k'", (stored,))

    fresh = ResponseCache(db_path, clock=clock)
    assert fresh.get("k") is None
    assert rows(db_path) == []
    fresh.set("k", response("again"))
    assert fresh.get("k") == response("again")
    fresh.close()


def test_unreadable_file_degrades_to_memory(tmp_path, clock):
    path = tmp_path / "cache.db"
    path.write_bytes(b"this is not a SQLite database, not even close" * 100)
    cache = ResponseCache(path, clock=clock)
    assert cache.get("k") is None
    cache.set("k", response())  # logged, not raised
    assert cache.get("k") == response()
    stats = cache.stats()
    assert stats["entries"] is None and stats["errors"] >= 2
    cache.close()


def test_nothing_is_created_before_first_use(tmp_path, clock):
    path = tmp_path / "a" / "b" / "cache.db"
    cache = ResponseCache(path, clock=clock)
    assert not (tmp_path / "a").exists()
    assert cache.get("k") is None
    assert path.exists()
    cache.close()


def test_cache_re_exports_the_key_function():
    assert cache_module.cache_key is request_key_module.cache_key
    assert cache_module.CACHE_KEY_VERSION == request_key_module.CACHE_KEY_VERSION


def test_import_and_memory_cache_stay_light():
    code = (
        "import sys; from leadfactory.llm.cache import ResponseCache;"
        "c = ResponseCache(None); c.set('k', {'a': 1}); c.get('k');"
        "print(sorted(m for m in ('sqlite_utils', 'loguru', 'litellm') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_default_path(monkeypatch, tmp_path):
    monkeypatch.setenv("LLM_CACHE_PATH", str(tmp_path / "explicit.db"))
    assert ResponseCache.default_path() == tmp_path / "explicit.db"
    monkeypatch.delenv("LLM_CACHE_PATH")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert ResponseCache.default_path() == tmp_path / "xdg" / "leadfactory-llm" / "cache.db"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    expected = tmp_path / "home" / ".cache" / "leadfactory-llm" / "cache.db"
    assert ResponseCache.default_path() == expected
    assert not (tmp_path / "home").exists()


def test_threads_share_one_cache(db_path, clock):
    cache = ResponseCache(db_path, max_entries=50, memory_entries=8, clock=clock)
    errors = []

    def work(worker: int) -> None:
        try:
            for i in range(100):
                key = f"k{(worker * 7 + i) % 60}"
                got = cache.get(key)
                if got is None:
                    cache.set(key, response(key))
                else:
                    assert got == response(key)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    assert errors == []
    assert cache.stats()["errors"] == 0
    assert len(rows(db_path)) <= 50
    cache.close()


# -- SingleFlight: threads ------------------------------------------------------------


class _CountingEvent(threading.Event):
    waiting = 0
    lock = threading.Lock()

    def wait(self, timeout=None):
        with _CountingEvent.lock:
            _CountingEvent.waiting += 1
        return super().wait(timeout)


@pytest.fixture
def counted_waits(monkeypatch):
    """Count followers waiting in SingleFlight.run, so a test can release the leader
    once they all are (patches only the singleflight module's view of ``threading``)."""
    _CountingEvent.waiting = 0
    fake = types.SimpleNamespace(
        Event=_CountingEvent, Lock=threading.Lock, get_ident=threading.get_ident
    )
    monkeypatch.setattr(singleflight_module, "threading", fake)

    def until(count: int) -> None:
        done = threading.Event()
        for _ in range(int(WAIT * 1000)):
            if _CountingEvent.waiting >= count:
                return
            done.wait(0.001)
        raise AssertionError(f"only {_CountingEvent.waiting} of {count} followers waited")

    return until


def run_threads(n, target):
    results, errors = [None] * n, [None] * n

    def wrapper(i):
        try:
            results[i] = target()
        except BaseException as exc:
            errors[i] = exc

    threads = [threading.Thread(target=wrapper, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    return threads, results, errors


def join(threads):
    for thread in threads:
        thread.join(WAIT)
        assert not thread.is_alive()


def test_threads_make_one_call_and_share_the_result(counted_waits):
    flight = SingleFlight()
    calls = []
    started, release = threading.Event(), threading.Event()
    result = {"answer": 42}

    def fn():
        calls.append(1)
        started.set()
        release.wait(WAIT)
        return result

    leader, results, errors = run_threads(1, lambda: flight.run("k", fn))
    started.wait(WAIT)
    followers, more_results, more_errors = run_threads(19, lambda: flight.run("k", fn))
    counted_waits(19)
    release.set()
    join(leader + followers)

    assert len(calls) == 1
    assert errors + more_errors == [None] * 20
    assert all(r is result for r in results + more_results)
    assert flight.run("k", lambda: "later") == "later"  # the key was freed


def test_threads_share_an_error_and_free_the_key(counted_waits):
    flight = SingleFlight()
    started, release = threading.Event(), threading.Event()
    boom = RuntimeError("provider down")

    def fn():
        started.set()
        release.wait(WAIT)
        raise boom

    threads, _, errors = run_threads(1, lambda: flight.run("k", fn))
    started.wait(WAIT)
    more, _, more_errors = run_threads(4, lambda: flight.run("k", fn))
    counted_waits(4)
    release.set()
    join(threads + more)

    assert all(error is boom for error in errors + more_errors)
    assert flight.run("k", lambda: "recovered") == "recovered"


def test_thread_leader_interrupted_hands_over_to_a_follower(counted_waits):
    flight = SingleFlight()
    calls = []
    started, release = threading.Event(), threading.Event()

    def fn():
        calls.append(1)
        if len(calls) == 1:
            started.set()
            release.wait(WAIT)
            raise KeyboardInterrupt
        counted_waits(3 + 2)  # the two other followers now wait for this new leader
        return "from the new leader"

    leader, _, leader_errors = run_threads(1, lambda: flight.run("k", fn))
    started.wait(WAIT)
    followers, results, errors = run_threads(3, lambda: flight.run("k", fn))
    counted_waits(3)
    release.set()
    join(leader + followers)

    assert isinstance(leader_errors[0], KeyboardInterrupt)
    assert errors == [None] * 3 and results == ["from the new leader"] * 3
    assert len(calls) == 2


def test_different_keys_run_concurrently():
    flight = SingleFlight()
    a_started, b_started = threading.Event(), threading.Event()

    def a():
        a_started.set()
        return b_started.wait(WAIT)

    def b():
        b_started.set()
        return a_started.wait(WAIT)

    threads, results, _ = run_threads(1, lambda: flight.run("a", a))
    assert flight.run("b", b) is True
    join(threads)
    assert results == [True]


def test_reentrant_run_raises():
    flight = SingleFlight()
    with pytest.raises(RuntimeError, match="re-entered"):
        flight.run("k", lambda: flight.run("k", lambda: 1))
    assert flight.run("k", lambda: 2) == 2


# -- SingleFlight: asyncio ----------------------------------------------------------


async def gather_callers(flight, key, fn, n):
    """Start n callers, then yield until all are registered (arun registers before its
    first await), and return the gather future."""
    entered = 0

    async def caller():
        nonlocal entered
        entered += 1
        return await flight.arun(key, fn)

    tasks = [asyncio.ensure_future(caller()) for _ in range(n)]
    while entered < n:
        await asyncio.sleep(0)
    return tasks


def test_tasks_make_one_call_and_share_the_result():
    async def main():
        flight = SingleFlight()
        gate = asyncio.Event()
        calls = []
        result = {"answer": 42}

        async def fn():
            calls.append(1)
            await gate.wait()
            return result

        tasks = await gather_callers(flight, "k", fn, 20)
        gate.set()
        results = await asyncio.gather(*tasks)
        assert len(calls) == 1
        assert all(r is result for r in results)
        assert await flight.arun("k", fn) is result and len(calls) == 2

    asyncio.run(main())


def test_tasks_share_an_error_and_free_the_key():
    async def main():
        flight = SingleFlight()
        gate = asyncio.Event()
        boom = ValueError("bad request")

        async def fn():
            await gate.wait()
            raise boom

        tasks = await gather_callers(flight, "k", fn, 5)
        gate.set()
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        assert all(outcome is boom for outcome in outcomes)

        async def ok():
            return "recovered"

        assert await flight.arun("k", ok) == "recovered"

    asyncio.run(main())


def test_cancelled_leader_hands_over_to_a_follower():
    async def main():
        flight = SingleFlight()
        calls = []
        never = asyncio.Event()

        async def fn():
            calls.append(1)
            if len(calls) == 1:
                await never.wait()
            for _ in range(10):  # let the other followers find this new leader
                await asyncio.sleep(0)
            return "from the new leader"

        tasks = await gather_callers(flight, "k", fn, 4)
        await asyncio.sleep(0)  # the leader is now inside fn
        tasks[0].cancel()
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        assert isinstance(outcomes[0], asyncio.CancelledError)
        assert outcomes[1:] == ["from the new leader"] * 3
        assert len(calls) == 2

    asyncio.run(main())


def test_cancelled_follower_does_not_disturb_the_others():
    async def main():
        flight = SingleFlight()
        gate = asyncio.Event()
        calls = []

        async def fn():
            calls.append(1)
            await gate.wait()
            return "shared"

        tasks = await gather_callers(flight, "k", fn, 3)
        tasks[1].cancel()
        await asyncio.sleep(0)
        gate.set()
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        assert outcomes[0] == "shared" and outcomes[2] == "shared"
        assert isinstance(outcomes[1], asyncio.CancelledError)
        assert len(calls) == 1

    asyncio.run(main())


def test_reentrant_arun_raises():
    async def main():
        flight = SingleFlight()

        async def inner():
            return 1

        async def outer():
            return await flight.arun("k", inner)

        with pytest.raises(RuntimeError, match="re-entered"):
            await flight.arun("k", outer)

    asyncio.run(main())


def test_event_loops_in_two_threads_do_not_share_calls():
    flight = SingleFlight()
    started, release = threading.Event(), threading.Event()

    async def slow():
        started.set()
        await asyncio.get_running_loop().run_in_executor(None, release.wait, WAIT)
        return "first loop"

    async def fast():
        return "second loop"

    threads, results, errors = run_threads(1, lambda: asyncio.run(flight.arun("k", slow)))
    started.wait(WAIT)
    assert asyncio.run(flight.arun("k", fast)) == "second loop"
    release.set()
    join(threads)
    assert results == ["first loop"] and errors == [None]


# -- several processes ------------------------------------------------------------------


def _process_worker(args):
    path, worker, start_at = args
    import time

    while time.time() < start_at:  # open the fresh file at the same moment
        pass
    cache = ResponseCache(path, max_entries=150)
    for i in range(200):
        key = f"k{(i * 7 + worker) % 300}"
        got = cache.get(key)
        if got is None:
            cache.set(key, {"value": key})
        elif got != {"value": key}:
            return "wrong value"
    errors = cache.stats()["errors"]
    cache.close()
    return errors


@pytest.mark.slow
def test_processes_share_a_fresh_file(db_path):
    import multiprocessing
    import time

    start_at = time.time() + 1.0
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        results = pool.map(_process_worker, [(db_path, n, start_at) for n in range(4)])
    assert results == [0, 0, 0, 0]
    with contextlib.closing(sqlite3.connect(db_path)) as conn:
        assert conn.execute("SELECT count(*) FROM _sqlite_migrations").fetchone() == (2,)
        assert conn.execute("SELECT count(*) FROM responses").fetchone()[0] <= 150 + 4 * 15


def test_memory_only_lookup_leaves_the_file_alone(tmp_path):
    path = tmp_path / "cache.db"
    with ResponseCache(path) as writer:
        writer.set("k" * 64, {"answer": 1})
    with ResponseCache(path) as reader:  # a fresh process's view: nothing in memory yet
        assert reader.get("k" * 64, memory_only=True) is None
        assert reader.get("k" * 64) == {"answer": 1}
        assert reader.get("k" * 64, memory_only=True) == {"answer": 1}  # now remembered


def test_a_stored_copy_is_what_a_json_round_trip_gives():
    import enum

    from leadfactory.llm.cache.memory import json_copy

    class Colour(enum.StrEnum):
        RED = "red"

    odd = {
        "tuple": (1, 2.5, "x"),
        1: "int key",
        2.5: "float key",
        False: "bool key",
        None: "none key",
        "nested": [{"deep": (None, Colour.RED, False)}],
        "text": "Müller \ud800",
    }
    assert json_copy(odd) == json.loads(json.dumps(odd))
    looped: dict = {}
    looped["self"] = looped
    for bad in ({"x": object()}, {(1, 2): "tuple key"}, looped):
        with pytest.raises(ValueError):
            json_copy(bad)


def test_the_file_is_private(tmp_path):
    """The cache holds prompts and answers: 0600 in a directory it makes 0700."""
    path = tmp_path / "made" / "cache.db"
    with ResponseCache(path) as cache:
        cache.set("k", response())
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700


# -- write-behind ------------------------------------------------------------------------


def test_write_behind_answers_are_in_memory_at_once_and_in_the_file_after_flush(db_path):
    with ResponseCache(db_path, write_behind=True) as cache:
        cache._writer._linger = 60.0  # the thread waits: only flush() writes here
        cache.set("k", response())
        assert cache.get("k", memory_only=True) == response()
        with ResponseCache(db_path) as other:
            assert other.get("k") is None  # not written yet
        cache.flush()
        with ResponseCache(db_path) as other:
            assert other.get("k") == response()


def test_write_behind_answers_reach_the_file_when_the_process_exits(db_path):
    """No close(): the answers still queued are written at exit."""
    code = (
        "import sys; from leadfactory.llm.cache import ResponseCache;"
        "cache = ResponseCache(sys.argv[1], write_behind=True);"
        "cache._writer._linger = 60.0;"
        "[cache.set(f'k{i}', {'answer': i}) for i in range(3)]"
    )
    subprocess.run([sys.executable, "-c", code, str(db_path)], check=True, timeout=60)
    with ResponseCache(db_path) as reader:
        assert [reader.get(f"k{i}") for i in range(3)] == [{"answer": i} for i in range(3)]


def _flush_in_child(cache: ResponseCache) -> None:
    cache.set("child", {"answer": "child"})
    cache.close()


@pytest.mark.skipif(sys.platform == "win32", reason="needs fork")
def test_a_forked_child_leaves_the_parents_queued_answers_to_the_parent(db_path):
    import multiprocessing

    cache = ResponseCache(db_path, write_behind=True)
    cache._writer._linger = 60.0
    cache.set("parent", {"answer": "parent"})
    child = multiprocessing.get_context("fork").Process(target=_flush_in_child, args=(cache,))
    child.start()
    child.join(60)
    assert child.exitcode == 0
    with ResponseCache(db_path) as reader:
        assert reader.get("child") == {"answer": "child"}
        assert reader.get("parent") is None  # written once, by the parent
    cache.close()
    with ResponseCache(db_path) as reader:
        assert reader.get("parent") == {"answer": "parent"}
