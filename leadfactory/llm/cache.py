"""A response cache: an in-memory LRU in front of a SQLite file.

``ResponseCache`` maps keys made by ``cache_key(request)`` (defined in
:mod:`leadfactory.llm.request_key`, re-exported here) to successful responses (JSON
objects) for ``ttl`` seconds.

The file is an ordinary SQLite database (WAL mode) that several processes may share, with
one table that ``sqlite-utils`` and Datasette read without help::

    responses(key TEXT PRIMARY KEY, created_at REAL, expires_at REAL, provider TEXT,
              model TEXT, response TEXT, hits INTEGER, last_hit_at REAL)

Times are unix seconds; the view ``cache_entries`` shows them as ISO 8601 text.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .busy import retry_busy
from .checkpoint import BACKSTOP_PAGES, BackgroundCheckpointer
from .request_key import CACHE_KEY_VERSION, cache_key

if TYPE_CHECKING:  # sqlite-utils is imported on first open, never for a memory-only cache
    from sqlite_utils import Database

__all__ = ["CACHE_KEY_VERSION", "ResponseCache", "cache_key"]

_BUSY_TIMEOUT = 5.0  # seconds a connection waits for another process's write lock
_FLUSH_AFTER_KEYS = 64  # hit counts are written to the file in batches...
_FLUSH_AFTER_SECONDS = 60.0  # ...or at least this often while the cache is being read


# -- the cache ------------------------------------------------------------------


def _copy_json(value: Any) -> Any:
    """Deep copy of decoded JSON (dicts, lists and immutable scalars): 5x faster than
    ``copy.deepcopy`` and 2x faster than decoding the text again."""
    if type(value) is dict:
        return {key: _copy_json(item) for key, item in value.items()}
    if type(value) is list:
        return [_copy_json(item) for item in value]
    return value


class ResponseCache:
    """Successful responses by ``cache_key``, kept ``ttl`` seconds.

    ``path`` is the SQLite file (see ``default_path()``), or None to keep everything in
    memory, in which case at most ``max_entries`` entries are kept. With a file, the
    ``memory_entries`` most recently used responses are also kept decoded in memory.

    ``ttl`` is in seconds from ``set``; None means entries never expire. ``clock``
    returns unix seconds (tests pass a fake one).

    Thread-safe: one lock guards the memory LRU and another the single SQLite connection
    (opened on first use, reopened after ``close()`` or in a forked child). Processes may
    share the file: it uses WAL and waits up to 5 s for another writer. The memory front
    belongs to this object, so a ``delete`` or ``clear`` in another process is not seen
    by it until the entry leaves memory or expires.

    ``get`` and ``set`` never raise because of the file: a corrupt entry is deleted and
    treated as a miss, and an unreadable or locked file is logged (``loguru``, once per
    kind of failure) and counted in ``stats()["errors"]``; the cache then works from
    memory. ``stats`` reports ``entries`` as None then; ``delete`` and ``clear`` raise
    ``sqlite3.Error``.

    ``max_entries`` is a soft bound on the file, enforced in batches: after every
    ``max_entries // 10`` writes (or sooner when its own writes pass the bound), this
    object counts the rows and, if there are too many, removes expired entries and then
    the least recently used ones until 10% of the room is free. So each process writing
    the file can push it over the bound by at most a tenth until it next counts.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None,
        *,
        ttl: float | None = 86400.0,
        max_entries: int = 10_000,
        memory_entries: int = 256,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if ttl is not None and not ttl > 0:  # also rejects NaN
            raise ValueError(
                f"ttl must be a positive number of seconds, or None for no expiry; got {ttl!r}"
            )
        if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 1:
            raise ValueError(f"max_entries must be an integer >= 1; got {max_entries!r}")
        if (
            isinstance(memory_entries, bool)
            or not isinstance(memory_entries, int)
            or memory_entries < 0
        ):
            raise ValueError(f"memory_entries must be an integer >= 0; got {memory_entries!r}")
        self.path: Path | None = None if path is None else Path(os.fspath(path)).expanduser()
        self.ttl = None if ttl is None else float(ttl)
        self.max_entries = max_entries
        self.memory_entries = max_entries if path is None else memory_entries
        self._clock = clock

        # Lock order: _db_lock may be held while taking _memory_lock, never the reverse.
        self._memory_lock = threading.Lock()
        self._memory: OrderedDict[str, tuple[float | None, dict[str, Any]]] = OrderedDict()
        self._pending_hits: dict[str, list[float]] = {}  # key -> [count, last hit]
        self._last_flush = clock()
        self._counters = dict.fromkeys(
            ("hits", "misses", "memory_hits", "disk_hits", "evictions", "expired", "errors"), 0
        )

        self._db_lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._conn_pid = 0
        self._approx_rows = 0  # rows in the file, as of the last count, plus our inserts
        self._unchecked_writes = 0  # our inserts since the last count
        self._check_every = max(1, max_entries // 10)
        self._reported: set[tuple[str, str]] = set()
        # WAL checkpoints on a background thread, not inside a request's store (as the ledger).
        self._checkpointer = None if self.path is None else BackgroundCheckpointer(self.path)

    @staticmethod
    def default_path() -> Path:
        """``$LLM_CACHE_PATH`` if set, else ``$XDG_CACHE_HOME/leadfactory-llm/cache.db``,
        else ``~/.cache/leadfactory-llm/cache.db``. Nothing is created until first use."""
        explicit = os.environ.get("LLM_CACHE_PATH")
        if explicit:
            return Path(explicit).expanduser()
        xdg = os.environ.get("XDG_CACHE_HOME", "")
        base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
        return base / "leadfactory-llm" / "cache.db"

    # -- public API ---------------------------------------------------------------

    def get(self, key: str, *, memory_only: bool = False) -> dict[str, Any] | None:
        """Return a private deep copy of the response stored under ``key``, or None if
        there is none or it expired. ``memory_only`` skips the file: for a second look
        just after a miss, when only this process can have stored the answer since."""
        _check_key(key)
        now = self._clock()
        with self._memory_lock:
            value, flush = self._get_from_memory(key, now)
            if value is None and (self.path is None or memory_only):
                self._counters["misses"] += 1
                return None
        if value is None:
            value = self._get_from_disk(key, now)
            with self._memory_lock:
                if value is None:
                    self._counters["misses"] += 1
                    return None
                self._counters["hits"] += 1
                self._counters["disk_hits"] += 1
        elif flush:
            self._flush_hits_safely()
        # Stored values are never handed out nor changed: copying outside the locks is safe.
        return _copy_json(value)

    def set(
        self,
        key: str,
        response: Mapping[str, Any],
        *,
        provider: str | None = None,
        model: str | None = None,
    ) -> None:
        """Store a copy of ``response`` (a JSON object) under ``key`` for ``ttl`` seconds.

        ``provider`` and ``model`` fill the columns of the same names (``model`` defaults
        to ``response["model"]``). Raises ValueError if ``response`` is not a mapping that
        JSON can encode: only successful responses belong here.
        """
        _check_key(key)
        if not isinstance(response, Mapping):
            raise ValueError(
                f"ResponseCache.set stores JSON objects (dicts), not {type(response).__name__}"
            )
        try:
            text = json.dumps(dict(response), ensure_ascii=False, separators=(",", ":"))
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"ResponseCache.set: response is not JSON-serialisable: {exc}"
            ) from exc
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates: SQLite needs valid UTF-8
            text = json.dumps(dict(response), separators=(",", ":"))
        value = json.loads(text)
        if model is None and isinstance(value.get("model"), str):
            model = value["model"]
        now = self._clock()
        expires_at = None if self.ttl is None else now + self.ttl
        if self.path is None:
            with self._memory_lock:
                self._remember(key, expires_at, value)
            return
        with self._db_lock:
            try:
                retry_busy(
                    lambda: self._write(key, text, now, expires_at, provider, model),
                    timeout=_BUSY_TIMEOUT,
                )
            except (sqlite3.Error, OSError) as exc:
                self._report("store", exc)
            with self._memory_lock:
                self._remember(key, expires_at, value)

    def delete(self, key: str) -> None:
        """Remove ``key`` from memory and from the file (no error if it is absent)."""
        _check_key(key)
        with self._db_lock:
            if self.path is not None:
                conn = self._connection()
                with conn:
                    conn.execute("DELETE FROM responses WHERE key = ?", (key,))
            with self._memory_lock:
                self._memory.pop(key, None)
                self._pending_hits.pop(key, None)

    def clear(self) -> int:
        """Empty memory and the file; return the number of entries removed."""
        with self._db_lock:
            removed = 0
            if self.path is not None:
                conn = self._connection()
                with conn:
                    removed = conn.execute("DELETE FROM responses").rowcount
                self._approx_rows = 0
            with self._memory_lock:
                if self.path is None:
                    removed = len(self._memory)
                self._memory.clear()
                self._pending_hits.clear()
        return removed

    def stats(self) -> dict[str, Any]:
        """Counters of this object since it was created, plus ``entries``: the live
        (unexpired) entries in the file (None if it cannot be read), or in memory."""
        now = self._clock()
        entries: int | None
        if self.path is None:
            with self._memory_lock:
                entries = sum(
                    1
                    for expires_at, _ in self._memory.values()
                    if expires_at is None or expires_at > now
                )
        else:
            with self._db_lock:
                try:
                    entries = (
                        self._connection()
                        .execute(
                            "SELECT count(*) FROM responses"
                            " WHERE expires_at IS NULL OR expires_at > ?",
                            (now,),
                        )
                        .fetchone()[0]
                    )
                except (sqlite3.Error, OSError) as exc:
                    self._report("count entries", exc)
                    entries = None
        with self._memory_lock:
            counters = dict(self._counters)
            in_memory = len(self._memory)
        return {
            "entries": entries,
            **counters,
            "memory_entries": in_memory,
            "path": None if self.path is None else str(self.path),
        }

    def close(self) -> None:
        """Write pending hit counts and close the file; a later call reopens it."""
        if self._checkpointer is not None:
            self._checkpointer.close()
        with self._db_lock:
            if self._conn is None:
                return
            if self._conn_pid == os.getpid():
                try:
                    self._flush_hits(self._conn)
                except sqlite3.Error as exc:
                    self._report("record hits", exc)
                self._conn.close()
            self._conn = None

    def __enter__(self) -> ResponseCache:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ResponseCache({None if self.path is None else str(self.path)!r}, ttl={self.ttl!r})"

    # -- memory -------------------------------------------------------------------

    def _get_from_memory(self, key: str, now: float) -> tuple[dict[str, Any] | None, bool]:
        """The live value in memory, and whether hit counts are due to be written
        (hold ``_memory_lock``). An expired value is dropped."""
        item = self._memory.get(key)
        if item is None:
            return None, False
        expires_at, value = item
        if expires_at is not None and expires_at <= now:
            del self._memory[key]
            if self.path is None:  # otherwise the read from the file counts it
                self._counters["expired"] += 1
            return None, False
        self._memory.move_to_end(key)
        self._counters["hits"] += 1
        self._counters["memory_hits"] += 1
        self._note_hit(key, now)
        return value, self._flush_due(now)

    def _remember(self, key: str, expires_at: float | None, value: dict[str, Any]) -> None:
        """Put ``value`` at the recent end of the memory LRU (hold ``_memory_lock``)."""
        if self.memory_entries == 0:
            return
        self._memory[key] = (expires_at, value)
        self._memory.move_to_end(key)
        while len(self._memory) > self.memory_entries:
            self._memory.popitem(last=False)
            if self.path is None:
                self._counters["evictions"] += 1

    def _note_hit(self, key: str, now: float) -> None:
        """Count a hit to be written to the file later (hold ``_memory_lock``)."""
        if self.path is None:
            return
        pending = self._pending_hits.get(key)
        if pending is None:
            self._pending_hits[key] = [1, now]
        else:
            pending[0] += 1
            pending[1] = max(pending[1], now)

    def _flush_due(self, now: float) -> bool:
        return bool(self._pending_hits) and (
            len(self._pending_hits) >= _FLUSH_AFTER_KEYS
            or now - self._last_flush >= _FLUSH_AFTER_SECONDS
        )

    # -- file -----------------------------------------------------------------------

    def _get_from_disk(self, key: str, now: float) -> dict[str, Any] | None:
        with self._db_lock:
            try:
                return retry_busy(lambda: self._read_row(key, now), timeout=_BUSY_TIMEOUT)
            except (sqlite3.Error, OSError) as exc:
                self._report("read", exc)
                return None

    def _read_row(self, key: str, now: float) -> dict[str, Any] | None:
        """The stored answer for ``key`` (hold ``_db_lock``); sqlite3.Error propagates."""
        conn = self._connection()
        row = conn.execute(
            "SELECT response, expires_at FROM responses WHERE key = ?", (key,)
        ).fetchone()
        if row is None:
            return None
        text, expires_at = row
        try:
            value = json.loads(text)
            expired = expires_at is not None and float(expires_at) <= now
            if not isinstance(value, dict):
                raise TypeError(f"stored response is a {type(value).__name__}")
        except (TypeError, ValueError) as exc:
            self._report("decode", exc, level="DEBUG")
            self._delete_row(conn, key)
            return None
        if expired:
            self._delete_row(conn, key)
            with self._memory_lock:
                self._counters["expired"] += 1
            return None
        with self._memory_lock:
            self._note_hit(key, now)
            self._remember(key, None if expires_at is None else float(expires_at), value)
            flush = self._flush_due(now)
        if flush:
            self._flush_hits(conn)
        return value

    def _write(
        self,
        key: str,
        text: str,
        now: float,
        expires_at: float | None,
        provider: str | None,
        model: str | None,
    ) -> None:
        """Insert or replace one row, recording pending hits first (hold ``_db_lock``)."""
        conn = self._connection()
        with self._memory_lock:
            hits = self._take_pending_hits()
        with conn:
            self._write_hits(conn, hits)
            conn.execute(
                "INSERT OR REPLACE INTO responses (key, created_at, expires_at, provider,"
                " model, response, hits, last_hit_at) VALUES (?, ?, ?, ?, ?, ?, 0, ?)",
                (key, now, expires_at, provider, model, text, now),
            )
        if self._checkpointer is not None:
            self._checkpointer.committed()
        self._approx_rows += 1
        self._unchecked_writes += 1
        if self._approx_rows > self.max_entries or self._unchecked_writes >= self._check_every:
            self._sweep(conn, now)

    def _sweep(self, conn: sqlite3.Connection, now: float) -> None:
        """Delete expired rows, count the rest and, if there are more than
        ``max_entries``, delete the least recently used down to 90% (hold ``_db_lock``)."""
        target = self.max_entries - self.max_entries // 10
        with conn:
            expired = conn.execute(
                "DELETE FROM responses WHERE expires_at IS NOT NULL AND expires_at <= ?", (now,)
            ).rowcount
            rows = conn.execute("SELECT count(*) FROM responses").fetchone()[0]
            victims: list[str] = []
            if rows > self.max_entries:
                victims = [
                    victim
                    for (victim,) in conn.execute(
                        "SELECT key FROM responses ORDER BY last_hit_at, created_at, rowid LIMIT ?",
                        (rows - target,),
                    )
                ]
                conn.executemany("DELETE FROM responses WHERE key = ?", [(v,) for v in victims])
        self._approx_rows = rows - len(victims)
        self._unchecked_writes = 0
        with self._memory_lock:
            self._counters["expired"] += expired
            self._counters["evictions"] += len(victims)
            for victim in victims:
                self._memory.pop(victim, None)

    def _delete_row(self, conn: sqlite3.Connection, key: str) -> None:
        with conn:
            conn.execute("DELETE FROM responses WHERE key = ?", (key,))
        with self._memory_lock:
            self._memory.pop(key, None)
            self._pending_hits.pop(key, None)

    def _take_pending_hits(self) -> list[tuple[int, float, str]]:
        """Hand over the pending hit counts (hold ``_memory_lock``)."""
        hits = [(int(count), last, key) for key, (count, last) in self._pending_hits.items()]
        self._pending_hits.clear()
        self._last_flush = self._clock()
        return hits

    @staticmethod
    def _write_hits(conn: sqlite3.Connection, hits: list[tuple[int, float, str]]) -> None:
        if hits:
            conn.executemany(
                "UPDATE responses SET hits = hits + ?,"
                " last_hit_at = max(coalesce(last_hit_at, 0), ?) WHERE key = ?",
                hits,
            )

    def _flush_hits(self, conn: sqlite3.Connection) -> None:
        """Write pending hit counts (hold ``_db_lock``)."""
        with self._memory_lock:
            hits = self._take_pending_hits()
        with conn:
            self._write_hits(conn, hits)

    def _flush_hits_safely(self) -> None:
        with self._db_lock:
            try:
                self._flush_hits(self._connection())
            except (sqlite3.Error, OSError) as exc:
                self._report("record hits", exc)

    def _connection(self) -> sqlite3.Connection:
        """The open connection, opening the file if needed (hold ``_db_lock``)."""
        if self._conn is not None and self._conn_pid == os.getpid():
            return self._conn
        if self._conn is not None:  # forked: the parent's connection is not ours to use
            self._conn = None
            with self._memory_lock:
                self._pending_hits.clear()
        assert self.path is not None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT, check_same_thread=False)
        try:
            db = _database(conn)
            db.enable_wal()
            conn.execute("PRAGMA synchronous=NORMAL")  # durable enough for a cache under WAL
            conn.execute(f"PRAGMA wal_autocheckpoint = {BACKSTOP_PAGES}")
            _migrate(db)
            self._approx_rows = conn.execute("SELECT count(*) FROM responses").fetchone()[0]
        except BaseException:
            conn.close()
            raise
        self._conn, self._conn_pid = conn, os.getpid()
        return conn

    def _report(self, action: str, exc: BaseException, level: str = "WARNING") -> None:
        """Log a failure of the file (once per kind at ``level``, then at DEBUG)."""
        from loguru import logger

        with self._memory_lock:
            self._counters["errors"] += 1
            kind = (action, type(exc).__name__)
            first = kind not in self._reported
            self._reported.add(kind)
        logger.log(
            level if first else "DEBUG",
            "Response cache {}: could not {} ({}: {}); continuing without it",
            self.path,
            action,
            type(exc).__name__,
            exc,
        )


def _check_key(key: object) -> None:
    if not isinstance(key, str) or not key:
        raise TypeError(f"cache keys are non-empty strings (see cache_key), not {key!r}")


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
