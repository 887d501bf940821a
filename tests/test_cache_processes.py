"""ResponseCache across processes, and its write-behind queue.

Four processes share a fresh file (marked slow); a memory-only lookup leaves the file
alone; a stored copy is what a JSON round trip gives; the file is private. Write-behind
answers are in memory at once and in the file after a flush, reach the file when the
process exits, and a forked child leaves the parent's queued answers to the parent.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import subprocess
import sys

import pytest

from leadfactory.llm.cache import ResponseCache

# fixtures, imported so that pytest finds them in this module
from .cache_fixtures import db_path as db_path
from .cache_fixtures import response

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
