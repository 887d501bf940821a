"""The memory front of the response cache: recent entries, decoded, and their uses.

Neither class locks: :class:`~.ResponseCache` holds its lock around them.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from typing import Any

from .store import Entry, Hit

__all__ = ["HitTally", "MemoryFront", "copy_json", "json_copy"]

_JSON_KEYS = {True: "true", False: "false", None: "null"}


def copy_json(value: Any) -> Any:
    """Deep copy of decoded JSON (dicts, lists and immutable scalars): 5x faster than
    ``copy.deepcopy`` and 2x faster than decoding the text again."""
    if type(value) is dict:
        return {key: copy_json(item) for key, item in value.items()}
    if type(value) is list:
        return [copy_json(item) for item in value]
    return value


def json_copy(value: Any) -> Any:
    """A private copy of ``value`` as a JSON round trip would give it (tuples become
    lists, int, float, bool and None keys become strings), without the text: a new
    answer is copied on the caller's path and encoded later. ValueError if JSON cannot
    express it."""
    try:
        return _json_copy(value)
    except RecursionError:
        raise ValueError("it is nested too deeply, or refers to itself") from None


def _json_copy(value: Any) -> Any:
    kind = type(value)
    if kind is str or kind is int or kind is float or kind is bool or value is None:
        return value
    if kind is dict or isinstance(value, dict):
        return {
            key if type(key) is str else _json_key(key): _json_copy(item)
            for key, item in value.items()
        }
    if kind is list or isinstance(value, list | tuple):
        return [_json_copy(item) for item in value]
    for base in (str, bool, int, float):  # subclasses (enums...), as json encodes them
        if isinstance(value, base):
            return base(value)
    raise ValueError(f"{kind.__name__} is not JSON-serialisable")


def _json_key(key: Any) -> str:
    if isinstance(key, bool) or key is None:
        return _JSON_KEYS[key]
    if isinstance(key, str):
        return str(key)
    if isinstance(key, int | float):
        return json.dumps(key)
    raise ValueError(f"keys must be str, int, float, bool or None, not {type(key).__name__}")


class MemoryFront:
    """The ``size`` most recently used entries, least recent first (an LRU)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: OrderedDict[str, Entry] = OrderedDict()

    def get(self, key: str, now: float) -> Entry | None:
        """The live entry under ``key``, now the most recent; an expired one is dropped."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expired(now):
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry

    def remember(self, entry: Entry) -> None:
        """Keep ``entry`` as the most recent, dropping the least recent beyond ``size``."""
        if self.size == 0:
            return
        self._entries[entry.key] = entry
        self._entries.move_to_end(entry.key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def forget(self, key: str) -> None:
        self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


class HitTally:
    """Uses of entries not yet recorded in the store: written in batches of ``batch``
    keys, or every ``every`` seconds while the cache is being read."""

    def __init__(self, now: float, *, batch: int = 64, every: float = 60.0) -> None:
        self.batch, self.every = batch, every
        self._pending: dict[str, list[float]] = {}  # key -> [count, last hit]
        self._last_taken = now

    def add(self, key: str, now: float) -> None:
        pending = self._pending.get(key)
        if pending is None:
            self._pending[key] = [1, now]
        else:
            pending[0] += 1
            pending[1] = max(pending[1], now)

    def due(self, now: float) -> bool:
        return bool(self._pending) and (
            len(self._pending) >= self.batch or now - self._last_taken >= self.every
        )

    def take(self, now: float) -> list[Hit]:
        hits = [Hit(key, int(count), last) for key, (count, last) in self._pending.items()]
        self._pending.clear()
        self._last_taken = now
        return hits

    def forget(self, key: str) -> None:
        self._pending.pop(key, None)

    def clear(self) -> None:
        self._pending.clear()
