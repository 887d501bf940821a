"""The response cache's SQLite file: a :class:`~.store.CacheStore` several processes share.

One table that ``sqlite-utils`` and Datasette read without help::

    responses(key TEXT PRIMARY KEY, created_at REAL, expires_at REAL, provider TEXT,
              model TEXT, response TEXT, hits INTEGER, last_hit_at REAL, endpoint TEXT)

Times are unix seconds; the view ``cache_entries`` shows them as ISO 8601 text.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ..sqlitedb import BACKSTOP_PAGES, BackgroundCheckpointer, retry_busy
from .store import CorruptEntryError, Entry, Eviction, Hit

if TYPE_CHECKING:  # sqlite-utils is imported on first open, never for a memory-only cache
    from sqlite_utils import Database

__all__ = ["SQLiteStore"]

T = TypeVar("T")

BUSY_TIMEOUT = 5.0  # seconds a connection waits for another process's write lock


class SQLiteStore:
    """Entries in a SQLite file (WAL), opened on first use and reopened in a forked child.

    Not thread-safe by itself: :class:`~.ResponseCache` calls it under its lock.
    """

    errors: tuple[type[BaseException], ...] = (sqlite3.Error, OSError)

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._path = Path(os.fspath(path)).expanduser()
        self.path: str | None = str(self._path)
        self._conn: sqlite3.Connection | None = None
        self._conn_pid = 0
        # WAL checkpoints on a background thread, not inside a request's store (as the ledger).
        self._checkpointer = BackgroundCheckpointer(self._path)

    # -- CacheStore --------------------------------------------------------------------

    def get(self, key: str) -> Entry | None:
        row = self._retry(
            lambda conn: conn.execute(
                "SELECT response, created_at, expires_at, provider, model, endpoint"
                " FROM responses WHERE key = ?",
                (key,),
            ).fetchone()
        )
        if row is None:
            return None
        text, created_at, expires_at, provider, model, endpoint = row
        try:
            value = json.loads(text)
            if not isinstance(value, dict):
                raise TypeError(f"stored response is a {type(value).__name__}")
            expires = None if expires_at is None else float(expires_at)
        except (TypeError, ValueError) as exc:
            self.delete(key)
            raise CorruptEntryError(f"cache entry {key[:12]}... was unreadable: {exc}") from exc
        return Entry(key, value, created_at, expires, provider, model, endpoint)

    def set(self, entries: Sequence[Entry]) -> None:
        rows = [
            (
                e.key,
                e.created_at,
                e.expires_at,
                e.provider,
                e.model,
                _encode(e.value),
                e.created_at,
                e.endpoint,
            )
            for e in entries
        ]

        def write(conn: sqlite3.Connection) -> None:
            with conn:
                conn.executemany(
                    "INSERT OR REPLACE INTO responses (key, created_at, expires_at, provider,"
                    " model, response, hits, last_hit_at, endpoint)"
                    " VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?)",
                    rows,
                )

        self._retry(write)
        self._checkpointer.committed()

    def delete(self, key: str) -> None:
        self._write("DELETE FROM responses WHERE key = ?", (key,))

    def clear(self) -> int:
        return self._write("DELETE FROM responses", ())

    def count(self, now: float | None = None) -> int:
        if now is None:
            return self._retry(lambda c: c.execute("SELECT count(*) FROM responses").fetchone()[0])
        return self._retry(
            lambda c: c.execute(
                "SELECT count(*) FROM responses WHERE expires_at IS NULL OR expires_at > ?", (now,)
            ).fetchone()[0]
        )

    def record_hits(self, hits: Sequence[Hit]) -> None:
        if not hits:
            return
        rows = [(hit.count, hit.last_hit_at, hit.key) for hit in hits]

        def write(conn: sqlite3.Connection) -> None:
            with conn:
                conn.executemany(
                    "UPDATE responses SET hits = hits + ?,"
                    " last_hit_at = max(coalesce(last_hit_at, 0), ?) WHERE key = ?",
                    rows,
                )

        self._retry(write)

    def evict(self, now: float, *, max_entries: int, target: int) -> Eviction:
        def sweep(conn: sqlite3.Connection) -> Eviction:
            with conn:
                expired = conn.execute(
                    "DELETE FROM responses WHERE expires_at IS NOT NULL AND expires_at <= ?",
                    (now,),
                ).rowcount
                rows = conn.execute("SELECT count(*) FROM responses").fetchone()[0]
                victims: list[str] = []
                if rows > max_entries:
                    victims = [
                        key
                        for (key,) in conn.execute(
                            "SELECT key FROM responses"
                            " ORDER BY last_hit_at, created_at, rowid LIMIT ?",
                            (rows - target,),
                        )
                    ]
                    conn.executemany(
                        "DELETE FROM responses WHERE key = ?", [(key,) for key in victims]
                    )
            return Eviction(expired, tuple(victims), rows - len(victims))

        return self._retry(sweep)

    def close(self) -> None:
        self._checkpointer.close()
        if self._conn is not None and self._conn_pid == os.getpid():
            self._conn.close()
        self._conn = None

    def after_fork(self) -> None:
        self._conn = None  # the parent's: never used nor closed here

    # -- connection --------------------------------------------------------------------

    def _write(self, sql: str, parameters: tuple[object, ...]) -> int:
        def write(conn: sqlite3.Connection) -> int:
            with conn:
                return conn.execute(sql, parameters).rowcount

        return self._retry(write)

    def _retry(self, work: Callable[[sqlite3.Connection], T]) -> T:
        return retry_busy(lambda: work(self._connection()), timeout=BUSY_TIMEOUT)

    def _connection(self) -> sqlite3.Connection:
        if self._conn is not None and self._conn_pid == os.getpid():
            return self._conn
        self._conn = None  # forked: the parent's connection is not ours to use
        self._path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self._path, timeout=BUSY_TIMEOUT, check_same_thread=False)
        try:
            db = _database(conn)
            db.enable_wal()
            conn.execute("PRAGMA synchronous=NORMAL")  # durable enough for a cache under WAL
            conn.execute(f"PRAGMA wal_autocheckpoint = {BACKSTOP_PAGES}")
            _migrate(db)
        except BaseException:
            conn.close()
            raise
        self._conn, self._conn_pid = conn, os.getpid()
        return conn


def _encode(value: dict[str, Any]) -> str:
    """``value`` as JSON text SQLite can keep: lone surrogates (not valid UTF-8) escaped."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(value, separators=(",", ":"))
    return text


# -- schema -------------------------------------------------------------------------


def _database(conn: sqlite3.Connection) -> Database:
    from sqlite_utils import Database

    return Database(conn, execute_plugins=False)


def _migrations():  # built on first open: sqlite-utils is not imported before
    from sqlite_utils import Migrations

    migrations = Migrations("leadfactory-llm-cache")

    @migrations()
    def m001_responses(db: Database) -> None:
        db["responses"].create(
            {
                "key": str,
                "created_at": float,
                "expires_at": float,
                "provider": str,
                "model": str,
                "response": str,
                "hits": int,
                "last_hit_at": float,
            },
            pk="key",
            not_null={"key", "created_at", "response", "hits"},
            defaults={"hits": 0},
            if_not_exists=True,
        )
        db["responses"].create_index(["expires_at"], if_not_exists=True)
        db["responses"].create_index(["last_hit_at"], if_not_exists=True)
        db.create_view(
            "cache_entries",
            "SELECT key, provider, model,"
            " strftime('%Y-%m-%dT%H:%M:%SZ', created_at, 'unixepoch') AS created,"
            " strftime('%Y-%m-%dT%H:%M:%SZ', expires_at, 'unixepoch') AS expires,"
            " hits,"
            " strftime('%Y-%m-%dT%H:%M:%SZ', last_hit_at, 'unixepoch') AS last_hit,"
            " length(response) AS response_chars,"
            " (expires_at IS NOT NULL"
            " AND expires_at <= CAST(strftime('%s', 'now') AS REAL)) AS expired"
            " FROM responses",
            ignore=True,
        )

    @migrations()
    def m002_endpoint(db: Database) -> None:
        """What produced each answer (provider, base URL, model); older rows have none
        and are never served again (issue 12: simulator answers outlived the simulator)."""
        db["responses"].add_column("endpoint", str)

    return migrations


def _migrate(db: Database) -> None:
    """Apply pending migrations; ``BEGIN IMMEDIATE`` makes concurrent openers take turns."""
    migrations = _migrations()
    if not migrations.pending(db):
        return
    db.conn.execute("BEGIN IMMEDIATE")
    try:
        migrations.apply(db)  # re-reads what is pending, now under the write lock
    except BaseException:
        db.conn.execute("ROLLBACK")
        raise
    db.conn.execute("COMMIT")
