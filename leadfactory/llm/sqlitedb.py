"""The one place the library opens SQLite files: the ledger and the cache both use it.

::

    steps = Migrations("leadfactory-llm-ledger")     # one set per kind of file

    @steps                                            # append only: never edit a shipped one
    def m001_calls(db: sqlite_utils.Database) -> None: ...

    file = SQLiteFile(path, migrations=steps, busy_timeout=30.0)
    rows = file.transaction(lambda conn: conn.execute("SELECT ...").fetchall(), write=False)
    file.close()                                      # the next use opens it again

:class:`SQLiteFile` takes care of opening (a missing file is created 0600, in
directories it creates 0700; an existing directory keeps its mode; WAL,
``synchronous=NORMAL``, pending migrations applied under ``BEGIN IMMEDIATE`` so
concurrent openers take turns; ``read_only=True`` creates and changes nothing), of one
connection per process shared by its threads behind a lock, of busy retries
(:func:`retry_busy`, then ``on_busy(exc)`` is raised) and of WAL checkpoints on a
background thread per file and process (:class:`BackgroundCheckpointer`).

Forks: before ``os.fork`` every file's locks are taken, so no thread is inside SQLite
with one of these connections at that moment; the child closes the idle connections it
inherited (SQLite's in-process lock records would otherwise shut it out of the file) and
makes new locks, connections and threads on first use.

Migrations are one style: functions registered in order on a :class:`Migrations` set,
applied once each by sqlite-utils' ``Migrations`` (recorded in ``_sqlite_migrations``
under the set's name; sqlite-utils is imported only when a step has to run).
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable
from itertools import takewhile
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from sqlite_utils import Database

__all__ = [
    "BACKSTOP_PAGES",
    "BackgroundCheckpointer",
    "Migrations",
    "SQLiteFile",
    "create_private_file",
    "is_busy",
    "retry_busy",
]

T = TypeVar("T")
BACKSTOP_PAGES = 10_000  # ~40 MB of log: SQLite checkpoints by itself if the thread lags
CHECKPOINT_IDLE_SECONDS = 60.0  # a checkpoint thread with no work for this long ends
FORK_WAIT_SECONDS = 10.0  # how long a fork waits for a transaction in another thread
_SQLITE_WAIT = 5.0  # SQLite's own wait for a lock, inside one attempt


def is_busy(exc: BaseException) -> bool:
    """Whether ``exc`` is SQLite's "database is locked" or "table is locked"."""
    code = getattr(exc, "sqlite_errorcode", None)
    return (
        isinstance(exc, sqlite3.OperationalError)
        and code is not None
        and (code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED))
    )


def retry_busy(attempt: Callable[[], T], *, timeout: float) -> T:
    """``attempt()``, again after a short random backoff while SQLite refuses it as busy.

    Raises the last busy error after ``timeout`` seconds, other errors at once.
    ``attempt`` must leave nothing half-done when it raises.
    """
    deadline, delay = time.monotonic() + timeout, 0.0005
    while True:
        try:
            return attempt()
        except sqlite3.OperationalError as exc:
            left = deadline - time.monotonic()
            if not is_busy(exc) or left <= 0:
                raise
        time.sleep(min(left, delay * random.uniform(0.5, 1.5)))
        delay = min(delay * 2, 0.05)


class Migrations:
    """An append-only list of schema steps, one set per kind of file.

    Register each step with the instance as a decorator; steps run in registration order,
    once each, recorded in sqlite-utils' ``_sqlite_migrations`` under ``name``.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.steps: list[Callable[[Database], None]] = []

    def __call__(self, step: Callable[[Database], None]) -> Callable[[Database], None]:
        self.steps.append(step)
        return step

    def pending(self, conn: sqlite3.Connection) -> list[str]:
        """Names of the steps not applied yet (reads the table without sqlite-utils)."""
        if not conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_sqlite_migrations'"
        ).fetchone():
            return [step.__name__ for step in self.steps]
        done = {
            name
            for (name,) in conn.execute(
                "SELECT name FROM _sqlite_migrations WHERE migration_set = ?", [self.name]
            )
        }
        return [step.__name__ for step in self.steps if step.__name__ not in done]

    def apply(self, conn: sqlite3.Connection, *, stop_before: str | None = None) -> None:
        """Apply the pending steps, inside the caller's transaction (tests: ``stop_before``)."""
        from sqlite_utils import Database
        from sqlite_utils import Migrations as Applier

        applier = Applier(self.name)
        for step in self.steps:
            applier()(step)
        applier.apply(Database(conn, execute_plugins=False), stop_before=stop_before)


def create_private_file(path: Path) -> None:
    """Create ``path`` empty and 0600 if it is missing, in missing directories made 0700.

    Existing directories keep their mode (the user chose it); SQLite gives the ``-wal``
    and ``-shm`` files the mode of the database file.
    """
    for directory in reversed(list(takewhile(lambda p: not p.exists(), path.parents))):
        with contextlib.suppress(FileExistsError):  # another process made it meanwhile
            directory.mkdir(mode=0o700)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


class _Guarded:
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


_GUARDED: weakref.WeakSet[_Guarded] = weakref.WeakSet()
_INHERITED: list[sqlite3.Connection] = []  # kept open for good: closing could block
_FORKING: list[_Guarded] = []


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


class SQLiteFile:
    """One SQLite file as this process sees it (see the module docstring)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        migrations: Migrations,
        busy_timeout: float = 30.0,
        read_only: bool = False,
        on_busy: Callable[[sqlite3.OperationalError], BaseException] | None = None,
        checkpoint_every: int = 256,
    ) -> None:
        self.path, self.migrations = Path(path), migrations
        self.busy_timeout, self.read_only, self._on_busy = busy_timeout, read_only, on_busy
        self._guarded = _Guarded()
        self.checkpointer = BackgroundCheckpointer(
            self.path, every=checkpoint_every, busy_timeout=min(busy_timeout, _SQLITE_WAIT)
        )

    def transaction(
        self,
        work: Callable[[sqlite3.Connection], T],
        *,
        write: bool = True,
        single_statement: bool = False,
    ) -> T:
        """Run ``work(conn)`` in one transaction (``BEGIN IMMEDIATE`` when writing).

        ``single_statement``: ``work`` runs one write statement, which SQLite makes its
        own transaction; leaving out BEGIN and COMMIT saves two round trips into SQLite.
        Busy refusals are retried (``work`` may run again); other errors are raised.
        """

        def attempt() -> T:
            with self._guarded.lock:
                conn = self._connection()
                if single_statement:
                    result = work(conn)
                else:
                    conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                    try:
                        result = work(conn)
                        conn.execute("COMMIT")
                    except BaseException:
                        if conn.in_transaction:
                            conn.execute("ROLLBACK")
                        raise
                if write:
                    self.checkpointer.committed()
                return result

        return self._retrying(attempt)

    def open(self) -> None:
        """Open (and prepare) this process's connection now, so a bad file fails here."""

        def attempt() -> None:
            with self._guarded.lock:
                self._connection()

        self._retrying(attempt)

    def close(self) -> None:
        """Close this process's connection and checkpoint thread; the next use reopens."""
        self.checkpointer.close()
        with self._guarded.lock:
            conn, self._guarded.conn = self._guarded.conn, None
            if conn is not None:
                conn.close()

    def _connection(self) -> sqlite3.Connection:
        """This process's connection, opened and prepared on first use (hold the lock)."""
        if (conn := self._guarded.conn) is not None:
            return conn
        if self.read_only:
            target, uri = f"{self.path.absolute().as_uri()}?mode=ro", True
        else:
            create_private_file(self.path)
            target, uri = str(self.path), False
        conn = sqlite3.connect(
            target, uri=uri, timeout=min(self.busy_timeout, _SQLITE_WAIT),
            isolation_level=None, check_same_thread=False,
        )  # fmt: skip
        try:
            if not self.read_only:
                self._prepare(conn)
        except BaseException:
            conn.close()
            raise
        conn.row_factory = sqlite3.Row
        self._guarded.conn = conn
        return conn

    def _prepare(self, conn: sqlite3.Connection) -> None:
        """WAL, ``synchronous=NORMAL``, pending migrations; only reads when up to date."""
        if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        # Checkpoints run in the background (BackgroundCheckpointer), not in our commits.
        conn.execute(f"PRAGMA wal_autocheckpoint = {BACKSTOP_PAGES}")
        if self.migrations.pending(conn):
            conn.execute("BEGIN IMMEDIATE")
            try:
                self.migrations.apply(conn)  # re-reads what is pending, under the write lock
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def _retrying(self, attempt: Callable[[], T]) -> T:
        try:
            return retry_busy(attempt, timeout=self.busy_timeout)
        except sqlite3.OperationalError as exc:
            if self._on_busy is None or not is_busy(exc):
                raise
            raise self._on_busy(exc) from exc


# -- background checkpoints ---------------------------------------------------------------


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
        self.owner, self.pid, self.guarded = owner, os.getpid(), _Guarded()
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
            while self.wake.wait(CHECKPOINT_IDLE_SECONDS):  # idle: end; the next round restarts
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
            from .log import log_event  # loguru only when there is something to say

            log_event(logging.DEBUG, f"checkpoint of {self.owner.path} skipped: {exc}")
