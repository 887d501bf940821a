"""SQLiteFile: one SQLite file as this process sees it (see the package docstring)."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Callable
from itertools import takewhile
from pathlib import Path
from typing import TypeVar

from .busy import is_busy, retry_busy
from .checkpoint import BACKSTOP_PAGES, BackgroundCheckpointer
from .forks import Guarded
from .migrations import Migrations
from .problems import UnusableFileError, foreign_problem, path_problem, tables

__all__ = ["SQLiteFile", "create_private_file"]

T = TypeVar("T")
_SQLITE_WAIT = 5.0  # SQLite's own wait for a lock, inside one attempt


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
        on_unusable: Callable[[UnusableFileError], BaseException] | None = None,
        checkpoint_every: int = 256,
    ) -> None:
        self.path, self.migrations = Path(path), migrations
        self.busy_timeout, self.read_only, self._on_busy = busy_timeout, read_only, on_busy
        self._on_unusable = on_unusable
        self._guarded = Guarded()
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

    def problem(self) -> str | None:
        """Why this file cannot be opened as asked (None: it can), creating nothing."""
        try:
            if problem := path_problem(self.path, writing=not self.read_only):
                return problem
            if not self.path.exists():
                return None
            conn = sqlite3.connect(self._read_only_uri(), uri=True)
            try:
                return foreign_problem(conn, self.migrations, reading=self.read_only)
            finally:
                conn.close()
        except (sqlite3.Error, OSError) as exc:
            return f"cannot be read ({exc})"

    def _connection(self) -> sqlite3.Connection:
        """This process's connection, opened and prepared on first use (hold the lock)."""
        if (conn := self._guarded.conn) is not None:
            return conn
        blank = self.read_only and not self.path.exists()
        problem = path_problem(self.path, writing=not self.read_only)
        if problem and not blank:
            raise UnusableFileError(self.path, problem)
        conn = self._connect(blank)
        try:
            if self.read_only and not blank:
                if problem := foreign_problem(conn, self.migrations, reading=True):
                    raise UnusableFileError(self.path, problem)
                if not tables(conn):  # an empty file reads as an empty database
                    conn.close()
                    conn = self._connect(blank := True)
            if blank or not self.read_only:
                self._prepare(conn)
        except BaseException as exc:
            conn.close()
            if isinstance(exc, sqlite3.DatabaseError) and not is_busy(exc):
                if isinstance(exc, UnusableFileError):
                    raise
                raise UnusableFileError(self.path, f"cannot be used ({exc})") from exc
            raise
        conn.row_factory = sqlite3.Row
        self._guarded.conn = conn
        return conn

    def _connect(self, blank: bool) -> sqlite3.Connection:
        if not self.read_only:
            create_private_file(self.path)
            target, uri = str(self.path), False
        elif blank:  # read as an empty file would be: an empty database in memory
            target, uri = "file:blank?mode=memory", True
        else:
            target, uri = self._read_only_uri(), True
        timeout = min(self.busy_timeout, _SQLITE_WAIT)
        try:
            return sqlite3.connect(
                target, uri=uri, timeout=timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.OperationalError as exc:
            raise UnusableFileError(self.path, f"cannot be opened ({exc})") from exc

    def _read_only_uri(self) -> str:
        """Read without creating anything: with no -wal file (no writer has work pending),
        ``immutable`` needs no -shm either; with one, ``mode=ro`` shares the writers'."""
        wal = self.path.with_name(self.path.name + "-wal")
        mode = "mode=ro" if wal.exists() else "immutable=1"
        return f"{self.path.absolute().as_uri()}?{mode}"

    def _prepare(self, conn: sqlite3.Connection) -> None:
        """WAL, ``synchronous=NORMAL``, pending migrations; only reads when up to date.

        Another application's database is refused before anything in it changes.
        """
        pending = self.migrations.pending(conn)
        if pending and (problem := foreign_problem(conn, self.migrations)):
            raise UnusableFileError(self.path, problem)
        if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        # Checkpoints run in the background (BackgroundCheckpointer), not in our commits.
        conn.execute(f"PRAGMA wal_autocheckpoint = {BACKSTOP_PAGES}")
        if pending:
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
        except UnusableFileError as exc:
            if self._on_unusable is None:
                raise
            raise self._on_unusable(exc) from exc
        except sqlite3.OperationalError as exc:
            if self._on_busy is None or not is_busy(exc):
                raise
            raise self._on_busy(exc) from exc
