"""A child forked while a parent thread is inside the cache (issue 12, fork safety):
it gets fresh locks and connections and never waits for a thread it does not have."""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading

import pytest

from leadfactory.llm.cache import ResponseCache, SingleFlight

WAIT = 60.0  # seconds before a child is declared hung (never reached when it works)

pytestmark = pytest.mark.skipif(
    sys.platform == "win32" or "fork" not in multiprocessing.get_all_start_methods(),
    reason="needs the fork start method",
)


def _run_in_forked_child(target, *args) -> int | None:
    """Fork a child running ``target(*args)``; its exit code, or None if it hung."""
    child = multiprocessing.get_context("fork").Process(target=target, args=args)
    child.start()
    child.join(WAIT)
    if child.is_alive():
        child.kill()
        child.join()
        return None
    return child.exitcode


def _fork_while_held(
    holder: threading.Thread, inside: threading.Event, release: threading.Event, target, *args
) -> int | None:
    """Start ``holder`` (a parent thread that sets ``inside`` and then waits for
    ``release`` while holding a lock), fork ``target(*args)`` meanwhile; its exit code."""
    holder.start()
    try:
        assert inside.wait(WAIT)
        return _run_in_forked_child(target, *args)
    finally:
        release.set()
        holder.join(WAIT)


def _use_cache(cache: ResponseCache) -> None:
    cache.set("child", {"answer": os.getpid()})
    assert cache.get("child") == {"answer": os.getpid()}
    assert cache.get("parent") == {"answer": "before the fork"}
    cache.close()


@pytest.mark.parametrize("write_behind", [False, True], ids=["sync", "write-behind"])
def test_child_forked_during_a_cache_write_uses_the_cache(tmp_path, write_behind):
    path = tmp_path / "cache.db"
    cache = ResponseCache(path, write_behind=write_behind)
    cache.set("parent", {"answer": "before the fork"})
    cache.flush()
    inside, release = threading.Event(), threading.Event()
    store_set = cache._store.set

    parent = os.getpid()

    def slow_set(entries):  # a parent thread stays inside the store, holding the lock
        if os.getpid() == parent:
            inside.set()
            release.wait(WAIT)
        store_set(entries)

    cache._store.set = slow_set
    writer = threading.Thread(target=cache.set, args=("busy", {"answer": "parent thread"}))
    exitcode = _fork_while_held(writer, inside, release, _use_cache, cache)
    assert exitcode == 0, "the child hung on the parent's lock" if exitcode is None else exitcode
    cache._store.set = store_set
    cache.close()
    with ResponseCache(path) as reader:  # the child's answer reached the file
        assert reader.get("child") is not None
        assert reader.get("busy") == {"answer": "parent thread"}


def _lead_same_key(flight: SingleFlight) -> None:
    assert flight.run("key", lambda: "child's own call") == "child's own call"


def test_child_forked_during_a_shared_call_makes_its_own():
    flight = SingleFlight()
    inside, release = threading.Event(), threading.Event()

    def parent_call() -> str:
        inside.set()
        release.wait(WAIT)
        return "parent's call"

    leader = threading.Thread(target=flight.run, args=("key", parent_call))
    exitcode = _fork_while_held(leader, inside, release, _lead_same_key, flight)
    assert exitcode == 0, "the child waited for the parent's call" if exitcode is None else exitcode
