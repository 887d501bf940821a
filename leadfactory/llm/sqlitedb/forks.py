"""Connections that survive ``os.fork``: a fork waits for them to be idle.

Before a fork every guarded connection's lock is taken (waiting up to
``FORK_WAIT_SECONDS`` for a transaction in another thread to end), so no thread is
inside SQLite with one of them at that moment. The child closes the idle connections it
inherited (SQLite's in-process lock records would otherwise shut it out of the file),
gets new locks, and opens new connections on first use.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import weakref

__all__ = ["FORK_WAIT_SECONDS", "Guarded"]

FORK_WAIT_SECONDS = 10.0  # how long a fork waits for a transaction in another thread


class Guarded:
    """A connection and the lock its users hold while in SQLite; a fork takes the lock."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.conn: sqlite3.Connection | None = None
        self.held = False  # by the thread forking, between before and after the fork
        _GUARDED.add(self)

    def start_afresh(self) -> None:
        """In a forked child: a new lock; the parent's connection closed if it was idle."""
        conn, self.conn, self.lock = self.conn, None, threading.RLock()
        if conn is not None and self.held and not conn.in_transaction:
            conn.close()  # clears SQLite's in-process lock records, which shut a child out
        elif conn is not None:  # another thread of the parent was using it: never touch it
            _INHERITED.append(conn)


_GUARDED: weakref.WeakSet[Guarded] = weakref.WeakSet()
_INHERITED: list[sqlite3.Connection] = []  # kept open for good: closing could block
_FORKING: list[Guarded] = []


def _before_fork() -> None:
    _FORKING[:] = list(_GUARDED)
    for guarded in _FORKING:  # wait for transactions in other threads to end
        guarded.held = guarded.lock.acquire(timeout=FORK_WAIT_SECONDS)


def _after_fork_in_parent() -> None:
    for guarded in _FORKING:
        if guarded.held:
            guarded.held = False
            guarded.lock.release()
    _FORKING.clear()


def _after_fork_in_child() -> None:
    for guarded in _FORKING:
        guarded.start_afresh()
        guarded.held = False
    _FORKING.clear()


os.register_at_fork(
    before=_before_fork, after_in_parent=_after_fork_in_parent, after_in_child=_after_fork_in_child
)
