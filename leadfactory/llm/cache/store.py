"""The seam behind the response cache: what a store of answers must do.

:class:`~leadfactory.llm.cache.ResponseCache` keeps recent answers decoded in memory
(:mod:`.memory`) in front of a :class:`CacheStore`, which keeps them for longer and,
for a file or a server, shares them between processes. A store only stores: when to
expire, evict, count hits or give up on a broken store is decided by the cache. The
SQLite file (:mod:`.sqlite_store`) and the in-process dict (:class:`MemoryStore`) are
the implementations; ``tests/contract/test_cache_store_contract.py`` is what a new one
(Redis, say) must pass.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

__all__ = ["CacheStore", "CorruptEntryError", "Entry", "Eviction", "Hit", "MemoryStore"]


@dataclass(frozen=True, slots=True)
class Entry:
    """One stored answer. ``value`` is decoded JSON (a store encodes it as it likes)
    that nobody changes after it is made: readers get copies. ``endpoint`` names what
    produced it (:func:`leadfactory.llm.cached_calls.endpoint`)."""

    key: str
    value: dict[str, Any]
    created_at: float
    expires_at: float | None
    provider: str | None = None
    model: str | None = None
    endpoint: str | None = None

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and self.expires_at <= now


@dataclass(frozen=True, slots=True)
class Hit:
    """Uses of one entry, counted in memory and recorded in the store in batches."""

    key: str
    count: int
    last_hit_at: float


@dataclass(frozen=True, slots=True)
class Eviction:
    """What :meth:`CacheStore.evict` removed, and how many entries remain."""

    expired: int
    evicted: tuple[str, ...]
    remaining: int


class CorruptEntryError(ValueError):
    """A stored entry could not be decoded; the store has deleted it."""


@runtime_checkable
class CacheStore(Protocol):
    """Answers by key, shared by whoever opens the same store.

    Methods raise one of :attr:`errors` when the store cannot be reached or read; the
    cache then works from memory. A store is used under the cache's lock, one call at
    a time per cache object, but other objects (and processes) may use it at once.
    """

    errors: tuple[type[BaseException], ...]
    """The exceptions that mean "the store is unavailable" (not a bug)."""

    path: str | None
    """Where the entries are, for messages and ``stats()`` (None: nowhere outside)."""

    def get(self, key: str) -> Entry | None:
        """The entry under ``key``, expired or not, or None. A corrupt one is deleted
        and reported as :class:`CorruptEntryError`."""

    def set(self, entries: Sequence[Entry]) -> None:
        """Store ``entries`` (replacing any under the same keys), with no hits yet."""

    def delete(self, key: str) -> None:
        """Remove ``key``; no error if it is absent."""

    def clear(self) -> int:
        """Remove every entry; return how many there were."""

    def count(self, now: float | None = None) -> int:
        """Entries not expired at ``now``; all of them when ``now`` is None."""

    def record_hits(self, hits: Sequence[Hit]) -> None:
        """Add ``hits`` to the entries' counts (entries gone since are skipped)."""

    def evict(self, now: float, *, max_entries: int, target: int) -> Eviction:
        """Delete the entries expired at ``now``; then, if more than ``max_entries``
        remain, the least recently used (last hit, else stored) down to ``target``."""

    def close(self) -> None:
        """Release connections; the store is usable again afterwards (reopens)."""

    def after_fork(self) -> None:
        """In a forked child: forget the parent's connections and locks, unused."""


class MemoryStore:
    """A :class:`CacheStore` in a dict: the store of a cache with no file."""

    errors: tuple[type[BaseException], ...] = ()
    path: str | None = None

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # key -> [entry, hits, last use, use order]: the order breaks ties of the clock
        self._entries: dict[str, list[Any]] = {}
        self._uses = itertools.count()

    def get(self, key: str) -> Entry | None:
        with self._lock:
            item = self._entries.get(key)
        return None if item is None else item[0]

    def set(self, entries: Sequence[Entry]) -> None:
        with self._lock:
            for entry in entries:
                self._entries[entry.key] = [entry, 0, entry.created_at, next(self._uses)]

    def delete(self, key: str) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def clear(self) -> int:
        with self._lock:
            removed = len(self._entries)
            self._entries.clear()
        return removed

    def count(self, now: float | None = None) -> int:
        with self._lock:
            entries = [item[0] for item in self._entries.values()]
        return len(entries) if now is None else sum(not e.expired(now) for e in entries)

    def record_hits(self, hits: Sequence[Hit]) -> None:
        with self._lock:
            for hit in hits:
                item = self._entries.get(hit.key)
                if item is not None:
                    item[1] += hit.count
                    item[2] = max(item[2], hit.last_hit_at)
                    item[3] = next(self._uses)

    def hits(self, key: str) -> int:
        """Recorded uses of ``key`` (0 if absent): for tests."""
        with self._lock:
            item = self._entries.get(key)
        return 0 if item is None else item[1]

    def evict(self, now: float, *, max_entries: int, target: int) -> Eviction:
        with self._lock:
            expired = [key for key, item in self._entries.items() if item[0].expired(now)]
            for key in expired:
                del self._entries[key]
            evicted: list[str] = []
            if len(self._entries) > max_entries:
                by_use = sorted(self._entries, key=lambda k: self._entries[k][2:])
                evicted = by_use[: len(self._entries) - target]
                for key in evicted:
                    del self._entries[key]
            return Eviction(len(expired), tuple(evicted), len(self._entries))

    def close(self) -> None:
        return None

    def after_fork(self) -> None:
        self._lock = threading.Lock()
