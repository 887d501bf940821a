"""ResponseCache: recent answers decoded in memory, in front of a store.

``ResponseCache`` maps keys made by :func:`~.request_key.cache_key` to successful
responses (JSON objects) for ``ttl`` seconds. The store is a SQLite file
(:mod:`.sqlite_store`) that several processes may share, or, with no path, a dict in
this process (:class:`~.store.MemoryStore`); any :class:`~.store.CacheStore` will do.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .lifecycle import close_at_exit, reset_after_fork
from .memory import HitTally, MemoryFront, copy_json, json_copy
from .store import CacheStore, CorruptEntryError, Entry, MemoryStore
from .write_behind import WriteBehind

__all__ = ["ResponseCache"]

EndpointOf = Callable[[str | None], str | None]
"""For a provider name, the endpoint it is configured with now (None: not configured)."""

_COUNTERS = ("hits", "misses", "memory_hits", "disk_hits", "evictions", "expired", "errors")


class ResponseCache:
    """Successful responses by ``cache_key``, kept ``ttl`` seconds.

    ``path`` is the SQLite file (see ``default_path()``), or None to keep everything in
    memory, in which case at most ``max_entries`` entries are kept. With a file, the
    ``memory_entries`` most recently used responses are also kept decoded in memory.
    ``store`` replaces the file by another :class:`~.store.CacheStore`.

    ``ttl`` is in seconds from ``set``; None means entries never expire. ``clock``
    returns unix seconds (tests pass a fake one). With ``write_behind``, ``set`` hands
    the answer to a background thread that writes it to the store (at the latest on
    ``flush``, ``close`` or exit); it is in memory at once.

    Thread-safe, and safe across ``fork``: a child gets fresh locks and connections, and
    none of the parent's unwritten answers. Processes may share the file: it uses WAL
    and waits up to 5 s for another writer. The memory front belongs to this object, so
    a ``delete`` or ``clear`` in another process is not seen by it until the entry
    leaves memory or expires.

    ``get`` and ``set`` never raise because of the store: a corrupt entry is deleted and
    treated as a miss, and an unreadable or locked file is logged (``loguru``, once per
    kind of failure) and counted in ``stats()["errors"]``; the cache then works from
    memory. ``stats`` reports ``entries`` as None then; ``delete`` and ``clear`` raise
    the store's error (``sqlite3.Error``).

    ``max_entries`` is a soft bound on the store, enforced in batches: after every
    ``max_entries // 10`` writes (or sooner when its own writes pass the bound), this
    object counts the entries and, if there are too many, removes expired entries and
    then the least recently used ones until 10% of the room is free. So each process
    writing the file can push it over the bound by at most a tenth until it next counts.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None,
        *,
        ttl: float | None = 86400.0,
        max_entries: int = 10_000,
        memory_entries: int = 256,
        clock: Callable[[], float] = time.time,
        write_behind: bool = False,
        store: CacheStore | None = None,
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
        if store is None:
            store = MemoryStore() if path is None else _sqlite_store(path)
        self._store = store
        where = store.path  # a file's path, or a server's address (never a secret)
        self.path: Path | str | None = where if not where or "://" in where else Path(where)
        self.ttl = None if ttl is None else float(ttl)
        self.max_entries = max_entries
        # A store in this process is memory already: the front then holds all of it.
        self.memory_entries = max_entries if store.path is None else memory_entries
        self._clock = clock

        self._front = MemoryFront(self.memory_entries)
        self._tally = HitTally(clock())
        self._unwritten: dict[str, Entry] = {}  # set, not yet in the store
        self._counters = dict.fromkeys(_COUNTERS, 0)
        self._approx_rows: int | None = None  # in the store, as last counted, plus our writes
        self._unchecked_writes = 0  # our writes since the last count
        self._check_every = max(1, max_entries // 10)
        self._reported: set[tuple[str, str]] = set()
        self._writer = WriteBehind(self.flush) if write_behind else None
        self._new_locks()
        reset_after_fork(self)
        close_at_exit(self)

    @property
    def store(self) -> CacheStore:  # the store behind the memory front
        return self._store

    def _new_locks(self) -> None:
        # Lock order: _store_lock may be held while taking _lock, never the reverse.
        self._lock = threading.Lock()  # the front, the tally, unwritten answers, counters
        self._store_lock = threading.Lock()  # one store call at a time

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

    def get(
        self, key: str, *, memory_only: bool = False, endpoint_of: EndpointOf | None = None
    ) -> dict[str, Any] | None:
        """Return a private deep copy of the response stored under ``key``, or None if
        there is none or it expired. ``memory_only`` skips the store: for a second look
        just after a miss, when only this process can have stored the answer since.
        ``endpoint_of``: serve only an answer whose endpoint is still configured."""
        _check_key(key)
        now = self._clock()
        with self._lock:
            entry = self._front.get(key, now) or self._unwritten.get(key)
            if entry is not None and _serves(entry, now, endpoint_of):
                self._count("hits", "memory_hits")
                self._tally.add(key, now)
                record_hits = self._tally.due(now)
            elif memory_only:
                self._count("misses")
                return None
            else:
                entry = None
        if entry is None:
            entry = self._read(key, now, endpoint_of)
            with self._lock:
                if entry is None:
                    self._count("misses")
                    return None
                self._count("hits", "disk_hits")
        elif record_hits:
            self._write_soon()
        # Stored values are never handed out nor changed: copying outside the locks is safe.
        return copy_json(entry.value)

    def set(
        self,
        key: str,
        response: Mapping[str, Any],
        *,
        provider: str | None = None,
        model: str | None = None,
        endpoint: str | None = None,
    ) -> None:
        """Store a copy of ``response`` (a JSON object) under ``key`` for ``ttl`` seconds.

        ``provider`` and ``model`` fill the columns of the same names (``model`` defaults
        to ``response["model"]``); ``endpoint`` names what produced it (never a secret).
        Raises ValueError if ``response`` is not a mapping that JSON can encode, or is a
        chat answer with no choices: only successful responses belong here.
        """
        _check_key(key)
        if not isinstance(response, Mapping):
            raise ValueError(
                f"ResponseCache.set stores JSON objects (dicts), not {type(response).__name__}"
            )
        if "choices" in response and not response["choices"]:
            raise ValueError(
                "ResponseCache.set: an answer with no choices is a provider failure; "
                "it is never cached"
            )
        try:
            value = json_copy(dict(response))
        except ValueError as exc:
            raise ValueError(
                f"ResponseCache.set: response is not JSON-serialisable: {exc}"
            ) from exc
        if model is None and isinstance(value.get("model"), str):
            model = value["model"]
        now = self._clock()
        expires_at = None if self.ttl is None else now + self.ttl
        entry = Entry(key, value, now, expires_at, provider, model, endpoint)
        with self._lock:
            self._unwritten[key] = entry
            self._front.remember(entry)
        self._write_soon()

    def flush(self) -> None:
        """Write unwritten answers and hit counts to the store now."""
        with self._store_lock:
            now = self._clock()
            with self._lock:
                entries = list(self._unwritten.values())
                hits = self._tally.take(now)
            try:
                self._store.record_hits(hits)
                if entries:
                    self._store.set(entries)
                    self._bound(now, len(entries))
            except self._store.errors as exc:
                self._report("store", exc)
            finally:
                with self._lock:
                    for entry in entries:  # written, or given up: memory still has them
                        if self._unwritten.get(entry.key) is entry:
                            del self._unwritten[entry.key]

    def delete(self, key: str) -> None:
        """Remove ``key`` from memory and from the store (no error if it is absent)."""
        _check_key(key)
        with self._store_lock:
            with self._lock:
                self._unwritten.pop(key, None)
            self._store.delete(key)
            with self._lock:
                self._front.forget(key)
                self._tally.forget(key)

    def clear(self) -> int:
        """Empty memory and the store; return the number of entries removed."""
        self.flush()
        with self._store_lock:
            removed = self._store.clear()
            self._approx_rows = 0
            with self._lock:
                self._front.clear()
                self._tally.clear()
        return removed

    def stats(self) -> dict[str, Any]:
        """Counters of this object since it was created, plus ``entries``: the live
        (unexpired) entries in the store (None if it cannot be read)."""
        self.flush()
        now = self._clock()
        entries: int | None
        with self._store_lock:
            try:
                entries = self._store.count(now)
            except self._store.errors as exc:
                self._report("count entries", exc)
                entries = None
        with self._lock:
            counters = dict(self._counters)
            in_memory = len(self._front)
        return {
            "entries": entries,
            **counters,
            "memory_entries": in_memory,
            "path": None if self.path is None else str(self.path),
        }

    def close(self) -> None:
        """Write what is pending and close the store; a later call reopens it."""
        if self._writer is not None:
            self._writer.stop()
        self.flush()
        with self._store_lock:
            self._store.close()

    def __enter__(self) -> ResponseCache:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ResponseCache({None if self.path is None else str(self.path)!r}, ttl={self.ttl!r})"

    # -- the store ------------------------------------------------------------------

    def _read(self, key: str, now: float, endpoint_of: EndpointOf | None) -> Entry | None:
        """The live entry from the store, remembered in memory; None on any failure."""
        expired = False
        with self._store_lock:
            try:
                entry = self._store.get(key)
                if entry is not None and entry.expired(now):
                    self._store.delete(key)
                    entry, expired = None, True
            except CorruptEntryError as exc:
                self._report("decode", exc, level="DEBUG")
                entry = None
            except self._store.errors as exc:
                self._report("read", exc)
                return None
            with self._lock:
                if expired:
                    self._count("expired")
                    self._front.forget(key)
                if entry is None:
                    return None
                self._front.remember(entry)
                if not _serves(entry, now, endpoint_of):
                    return None
                self._tally.add(key, now)
                record_hits = self._tally.due(now)
        if record_hits:
            self._write_soon()
        return entry

    def _write_soon(self) -> None:
        """Unwritten answers and hits to the store: by the writer thread, or now."""
        if self._writer is not None:
            self._writer.wake()
        else:
            self.flush()

    def _bound(self, now: float, written: int) -> None:
        """After ``written`` new entries, enforce ``max_entries`` when a check is due
        (hold ``_store_lock``)."""
        if self._approx_rows is None:
            self._approx_rows = self._store.count()
        else:
            self._approx_rows += written
        self._unchecked_writes += written
        if self._approx_rows <= self.max_entries and self._unchecked_writes < self._check_every:
            return
        target = self.max_entries - self.max_entries // 10
        eviction = self._store.evict(now, max_entries=self.max_entries, target=target)
        self._approx_rows, self._unchecked_writes = eviction.remaining, 0
        with self._lock:
            self._counters["expired"] += eviction.expired
            self._counters["evictions"] += len(eviction.evicted)
            for key in eviction.evicted:
                self._front.forget(key)
                self._tally.forget(key)

    def _count(self, *names: str) -> None:
        for name in names:
            self._counters[name] += 1

    def _report(self, action: str, exc: BaseException, level: str = "WARNING") -> None:
        """Log a failure of the store (once per kind at ``level``, then at DEBUG)."""
        from loguru import logger

        with self._lock:
            self._counters["errors"] += 1
            kind = (action, type(exc).__name__)
            first = kind not in self._reported and not getattr(exc, "reported", False)
            self._reported.add(kind)
        logger.log(
            level if first else "DEBUG",
            "Response cache {}: could not {} ({}: {}); continuing without it",
            self.path,
            action,
            type(exc).__name__,
            exc,
        )

    def after_fork(self) -> None:
        """In a forked child: fresh locks and connections; the parent writes its own
        unwritten answers and hits."""
        self._new_locks()
        self._unwritten.clear()
        self._tally.clear()
        self._approx_rows, self._unchecked_writes = None, 0
        if self._writer is not None:
            self._writer.after_fork()
        self._store.after_fork()


def _serves(entry: Entry, now: float, endpoint_of: EndpointOf | None) -> bool:
    """Whether ``entry`` may answer now: not expired, and (when asked) made by the
    endpoint its provider is configured with now."""
    if entry.expired(now):
        return False
    return endpoint_of is None or (
        entry.endpoint is not None and entry.endpoint == endpoint_of(entry.provider)
    )


def _check_key(key: object) -> None:
    if not isinstance(key, str) or not key:
        raise TypeError(f"cache keys are non-empty strings (see cache_key), not {key!r}")


def _sqlite_store(path: str | os.PathLike[str]) -> CacheStore:
    from .sqlite_store import SQLiteStore

    return SQLiteStore(path)
