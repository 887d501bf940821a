"""ResponseCache's SQLite file: kept across restarts, shared, migrated, and never fatal.

Hits after a restart (of the object and of a real process); two objects and several
threads sharing one file; the schema, its columns and migrations recorded once; a
corrupt row is a miss and deleted; an unreadable file degrades to memory; nothing is
created before first use; importing the cache and using it memory-only stays light;
the default path.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import subprocess
import sys
import threading

import pytest

from leadfactory.llm.cache import ResponseCache, cache_key

from .cache_fixtures import WAIT, make_request, response, rows

# fixtures, imported so that pytest finds them in this module
from .cache_fixtures import clock as clock
from .cache_fixtures import db_path as db_path

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
