"""The response cache's SQLite file: a :class:`~.store.CacheStore` several processes share.

One table that ``sqlite-utils`` and Datasette read without help::

    responses(key TEXT PRIMARY KEY, created_at REAL, expires_at REAL, provider TEXT,
              model TEXT, response TEXT, hits INTEGER, last_hit_at REAL, endpoint TEXT)

Times are unix seconds; the view ``cache_entries`` shows them as ISO 8601 text. Opening
the file, its connection per process (forks included), WAL, busy retries, migrations
and checkpoints are :class:`~leadfactory.llm.sqlitedb.SQLiteFile`'s; this module only
says what to run.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..sqlitedb import Migrations, SQLiteFile
from .store import CorruptEntryError, Entry, Eviction, Hit

if TYPE_CHECKING:  # sqlite-utils is imported only when a migration has to run
    from sqlite_utils import Database

__all__ = ["MIGRATIONS", "SQLiteStore"]

BUSY_TIMEOUT = 5.0  # seconds to wait for another process's write lock: then a cache miss

_INSERT = (
    "INSERT OR REPLACE INTO responses (key, created_at, expires_at, provider, model,"
    " response, hits, last_hit_at, endpoint) VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?)"
)
_HITS = (
    "UPDATE responses SET hits = hits + ?,"
    " last_hit_at = max(coalesce(last_hit_at, 0), ?) WHERE key = ?"
)


class SQLiteStore:
    """Entries in a SQLite file, opened on first use (see :class:`SQLiteFile`)."""

    errors: tuple[type[BaseException], ...] = (sqlite3.Error, OSError)

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._file = SQLiteFile(
            os.path.expanduser(os.fspath(path)), migrations=MIGRATIONS, busy_timeout=BUSY_TIMEOUT
        )
        self.path: str | None = str(self._file.path)

    def get(self, key: str) -> Entry | None:
        row = self._read(
            "SELECT response, created_at, expires_at, provider, model, endpoint"
            " FROM responses WHERE key = ?",
            (key,),
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
            (e.key, e.created_at, e.expires_at, e.provider, e.model, _encode(e.value),
             e.created_at, e.endpoint)
            for e in entries
        ]  # fmt: skip
        self._file.transaction(lambda conn: conn.executemany(_INSERT, rows))

    def delete(self, key: str) -> None:
        self._write("DELETE FROM responses WHERE key = ?", (key,))

    def clear(self) -> int:
        return self._write("DELETE FROM responses", ())

    def count(self, now: float | None = None) -> int:
        if now is None:
            return self._read("SELECT count(*) FROM responses", ())[0]
        return self._read(
            "SELECT count(*) FROM responses WHERE expires_at IS NULL OR expires_at > ?", (now,)
        )[0]

    def record_hits(self, hits: Sequence[Hit]) -> None:
        if hits:
            rows = [(hit.count, hit.last_hit_at, hit.key) for hit in hits]
            self._file.transaction(lambda conn: conn.executemany(_HITS, rows))

    def evict(self, now: float, *, max_entries: int, target: int) -> Eviction:
        def sweep(conn: sqlite3.Connection) -> Eviction:
            expired = conn.execute(
                "DELETE FROM responses WHERE expires_at IS NOT NULL AND expires_at <= ?", (now,)
            ).rowcount
            rows = conn.execute("SELECT count(*) FROM responses").fetchone()[0]
            victims: list[str] = []
            if rows > max_entries:
                victims = [
                    key
                    for (key,) in conn.execute(
                        "SELECT key FROM responses ORDER BY last_hit_at, created_at, rowid LIMIT ?",
                        (rows - target,),
                    )
                ]
                conn.executemany("DELETE FROM responses WHERE key = ?", [(k,) for k in victims])
            return Eviction(expired, tuple(victims), rows - len(victims))

        return self._file.transaction(sweep)

    def close(self) -> None:
        self._file.close()

    def after_fork(self) -> None:
        return None  # SQLiteFile starts afresh in a forked child by itself

    def _read(self, sql: str, parameters: tuple[object, ...]) -> Any:
        return self._file.transaction(
            lambda conn: conn.execute(sql, parameters).fetchone(),
            write=False,
            single_statement=True,
        )

    def _write(self, sql: str, parameters: tuple[object, ...]) -> int:
        return self._file.transaction(
            lambda conn: conn.execute(sql, parameters).rowcount, single_statement=True
        )


def _encode(value: dict[str, Any]) -> str:
    """``value`` as JSON text SQLite can keep: lone surrogates (not valid UTF-8) escaped."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(value, separators=(",", ":"))
    return text


# -- schema (append only: never edit a shipped step) --------------------------------------

MIGRATIONS = Migrations("leadfactory-llm-cache")


@MIGRATIONS
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


@MIGRATIONS
def m002_endpoint(db: Database) -> None:
    """What produced each answer (provider, base URL, model); older rows have none and
    are never served again (issue 12: simulator answers outlived the simulator)."""
    db["responses"].add_column("endpoint", str)
