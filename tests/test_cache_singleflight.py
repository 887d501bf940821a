"""SingleFlight across threads: one call per key, its result or error shared.

Followers wait for the leader and share its result or its error (and the key is free
again); a leader interrupted hands over to a follower; different keys run at once; a
re-entrant run raises. Followers are counted as they wait, so no test sleeps.
"""

from __future__ import annotations

import threading
import types

import pytest

from leadfactory.llm.cache import SingleFlight
from leadfactory.llm.cache import singleflight as singleflight_module

from .cache_fixtures import WAIT, join, run_threads

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
