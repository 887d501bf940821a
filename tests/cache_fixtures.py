"""Shared by the response cache tests: a fake clock (so no test sleeps to check a TTL), a
request and a response to store, the ``db_path`` under tmp_path and the ``rows`` of the
file; threads started and joined with a bound on every wait. Used by tests/test_cache_keys.py,
test_cache_store.py, test_cache_file.py, test_cache_processes.py,
test_cache_singleflight.py, test_cache_singleflight_async.py and test_client_cache.py.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading

import pytest

from .fake_clock import FakeClock

WAIT = 10.0  # seconds a test waits for another thread before failing (never reached)


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
    return FakeClock(1_700_000_000.0)


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "cache" / "cache.db"


def rows(path):
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return conn.execute("SELECT key, hits FROM responses ORDER BY key").fetchall()


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
