"""Retrying SQLite work refused as busy, shared by the ledger and the cache."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from leadfactory.llm.sqlitedb import is_busy, retry_busy


@pytest.fixture
def locked(tmp_path):
    """A database file whose write lock another connection holds, and a contender."""
    path = tmp_path / "busy.db"
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("PRAGMA journal_mode=WAL")
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN IMMEDIATE")
    contender = sqlite3.connect(path, timeout=0, isolation_level=None)
    yield holder, contender
    contender.close()
    holder.close()


def insert(conn: sqlite3.Connection) -> int:
    return conn.execute("INSERT INTO t VALUES (1)").rowcount


def test_a_busy_error_is_recognised(locked):
    _, contender = locked
    with pytest.raises(sqlite3.OperationalError) as caught:
        insert(contender)
    assert is_busy(caught.value)
    assert not is_busy(sqlite3.OperationalError("no such table: x"))
    assert not is_busy(ValueError("database is locked"))


def test_retries_until_the_lock_is_released(locked):
    holder, contender = locked
    threading.Timer(0.05, lambda: holder.execute("COMMIT")).start()
    assert retry_busy(lambda: insert(contender), timeout=5) == 1


def test_gives_up_with_the_busy_error_after_the_timeout(locked):
    _, contender = locked
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        retry_busy(lambda: insert(contender), timeout=0.05)


def test_other_errors_are_not_retried():
    calls = []

    def fail() -> None:
        calls.append(1)
        raise sqlite3.OperationalError("no such table: x")

    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        retry_busy(fail, timeout=5)
    assert calls == [1]
