"""Checkpoint a WAL-mode SQLite file from a background thread, off the writers' path.

SQLite copies its write-ahead log back into the database file (a checkpoint) inside
the COMMIT that takes the log past ``wal_autocheckpoint`` pages, so one request in a
few hundred pays for writing, and syncing, the pages of all the others. The ledger
commits on the request path (a reservation before each provider call, a settlement
after), and so does the response cache (a store after each miss), so their connections
raise that threshold to a backstop (:data:`BACKSTOP_PAGES`) and ask a
:class:`BackgroundCheckpointer` to checkpoint every ``every`` commits. The
checkpoint is PASSIVE: it never blocks a writer, and SQLite releases the GIL while it
runs, so it overlaps the requests instead of stalling one of them (or an event loop).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from pathlib import Path

__all__ = ["BACKSTOP_PAGES", "BackgroundCheckpointer"]

BACKSTOP_PAGES = 10_000  # ~40 MB of log: SQLite checkpoints by itself if the thread lags
IDLE_SECONDS = 60.0  # a checkpoint thread with no work for this long ends


class BackgroundCheckpointer:
    """Run ``PRAGMA wal_checkpoint(PASSIVE)`` on ``path`` every ``every`` commits.

    Call :meth:`committed` after each write transaction. The thread (with its own
    connection) starts on first need in each process, a forked child included, and
    again after :meth:`close`.
    """

    def __init__(self, path: Path, *, every: int = 256, busy_timeout: float = 5.0) -> None:
        if every < 1:
            raise ValueError("every must be at least 1 commit")
        self.path, self.every, self.busy_timeout = path, every, busy_timeout
        self._commits = 0
        self._worker: _Worker | None = None
        self.checkpoints = 0  # completed, for tests and benchmarks

    def committed(self) -> None:
        """Count one commit; wake the thread every ``every`` commits."""
        self._commits += 1
        if self._commits >= self.every:
            self._commits = 0
            worker = self._worker
            if worker is None or not worker.alive():
                worker = self._worker = _Worker(self)
            worker.wake.set()

    def close(self, timeout: float = 5.0) -> None:
        """Stop this process's thread, after the checkpoint it may be running."""
        worker, self._worker = self._worker, None
        if worker is not None and worker.alive():
            worker.stop.set()
            worker.wake.set()
            worker.thread.join(timeout)

    def _checkpoint(self, conn: sqlite3.Connection) -> None:
        try:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            self.checkpoints += 1
        except sqlite3.Error as exc:  # busy or gone: the next round, or the backstop, does it
            from .log import log_event  # loguru only when there is something to say

            log_event(logging.DEBUG, f"ledger checkpoint skipped: {exc}")


class _Worker:
    """One process's checkpoint thread and its events."""

    def __init__(self, owner: BackgroundCheckpointer) -> None:
        self.owner, self.pid = owner, os.getpid()
        self.wake, self.stop = threading.Event(), threading.Event()
        self.thread = threading.Thread(
            target=self._run, name="leadfactory-llm-checkpoint", daemon=True
        )
        self.thread.start()

    def alive(self) -> bool:
        return self.pid == os.getpid() and self.thread.is_alive()

    def _run(self) -> None:
        owner = self.owner
        conn = sqlite3.connect(
            owner.path, timeout=owner.busy_timeout, isolation_level=None, check_same_thread=False
        )
        try:
            while True:
                if not self.wake.wait(IDLE_SECONDS):  # idle: end; the next round starts one
                    return
                self.wake.clear()
                if self.stop.is_set():
                    return
                owner._checkpoint(conn)
        finally:
            conn.close()
