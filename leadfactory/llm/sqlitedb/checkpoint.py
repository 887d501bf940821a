"""WAL checkpoints on a background thread per file and process, off the writers' path."""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from pathlib import Path

from .forks import Guarded

__all__ = ["BACKSTOP_PAGES", "IDLE_SECONDS", "BackgroundCheckpointer"]

BACKSTOP_PAGES = 10_000  # ~40 MB of log: SQLite checkpoints by itself if the thread lags
IDLE_SECONDS = 60.0  # a checkpoint thread with no work for this long ends


class BackgroundCheckpointer:
    """Run ``PRAGMA wal_checkpoint(PASSIVE)`` on ``path`` every ``every`` commits.

    SQLite would checkpoint inside the COMMIT that takes the log past
    ``wal_autocheckpoint`` pages, making one request in a few hundred pay for all; files
    raise that to :data:`BACKSTOP_PAGES` and leave it to this thread, whose PASSIVE
    checkpoint never blocks a writer. The thread (own connection) starts on need in each
    process, and again after :meth:`close` or an idle minute.
    """

    def __init__(self, path: Path, *, every: int = 256, busy_timeout: float = 5.0) -> None:
        if every < 1:
            raise ValueError("every must be at least 1 commit")
        self.path, self.every, self.busy_timeout = path, every, busy_timeout
        self._commits = 0
        self._worker: _CheckpointWorker | None = None
        self.checkpoints = 0  # completed, for tests and benchmarks

    def committed(self) -> None:
        """Count one commit; wake the thread every ``every`` commits."""
        self._commits += 1
        if self._commits >= self.every:
            self._commits = 0
            worker = self._worker
            if worker is None or not worker.alive():
                worker = self._worker = _CheckpointWorker(self)
            worker.wake.set()

    def close(self, timeout: float = 5.0) -> None:
        """Stop this process's thread, after the checkpoint it may be running."""
        worker, self._worker = self._worker, None
        if worker is not None and worker.alive():
            worker.stop.set()
            worker.wake.set()
            worker.thread.join(timeout)


class _CheckpointWorker:
    """One process's checkpoint thread, its events and its connection."""

    def __init__(self, owner: BackgroundCheckpointer) -> None:
        self.owner, self.pid, self.guarded = owner, os.getpid(), Guarded()
        self.wake, self.stop = threading.Event(), threading.Event()
        self.thread = threading.Thread(
            target=self._run, name="leadfactory-llm-checkpoint", daemon=True
        )
        self.thread.start()

    def alive(self) -> bool:
        return self.pid == os.getpid() and self.thread.is_alive()

    def _run(self) -> None:
        owner, guarded = self.owner, self.guarded
        with guarded.lock:
            guarded.conn = sqlite3.connect(
                owner.path, timeout=owner.busy_timeout, isolation_level=None,
                check_same_thread=False,
            )  # fmt: skip
        try:
            while self.wake.wait(IDLE_SECONDS):  # idle: end; the next round restarts
                self.wake.clear()
                if self.stop.is_set():
                    return
                with guarded.lock:
                    self._checkpoint(guarded.conn)
        finally:
            with guarded.lock:
                conn, guarded.conn = guarded.conn, None
                if conn is not None:
                    conn.close()

    def _checkpoint(self, conn: sqlite3.Connection | None) -> None:
        try:
            if conn is not None:
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                self.owner.checkpoints += 1
        except sqlite3.Error as exc:  # busy or gone: the next round, or the backstop, does it
            from ..log import log_event  # loguru only when there is something to say

            log_event(logging.DEBUG, f"checkpoint of {self.owner.path} skipped: {exc}")
