"""The response cache on a Redis server: a :class:`~.store.CacheStore` many hosts share.

Keys, under the link's prefix (``leadfactory-llm:`` by default)::

    cache:e:<key>   hash: text, created_at, expires_at, provider, model, endpoint, hits
    cache:lru       sorted set: key -> last use (stored or last hit), for eviction
    cache:exp       sorted set: key -> expires_at, for counting and expiring
    cache:lock:<key>  who is calling the provider for this key now (single-flight)

Redis deletes an entry's hash by itself when its TTL passes (``PEXPIRE`` = its time to
live); the sorted sets forget it at the next eviction. Every change is one Lua script
or one MULTI, so hosts never see half an entry. A single Redis (not a cluster) is assumed.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from typing import Any

from ..redis_link import RedisLink, RedisUnavailable
from .store import CorruptEntryError, Entry, Eviction, Hit

__all__ = ["RedisStore"]

_FIELDS = ("text", "created_at", "expires_at", "provider", "model", "endpoint")

_RECORD_HITS = """
for i, key in ipairs(KEYS) do
  if i > 1 and redis.call('EXISTS', key) == 1 then
    redis.call('HINCRBY', key, 'hits', ARGV[3 * i - 5])
    redis.call('ZADD', KEYS[1], 'XX', 'GT', ARGV[3 * i - 4], ARGV[3 * i - 3])
  end
end
"""  # KEYS: lru, entry hashes...; ARGV: count, last_hit_at, key (per hash)

_EVICT = """
local lru, exp, prefix = KEYS[1], KEYS[2], ARGV[1]
local expired = redis.call('ZRANGEBYSCORE', exp, '-inf', ARGV[2])
for _, key in ipairs(expired) do
  redis.call('DEL', prefix .. key)
  redis.call('ZREM', lru, key)
  redis.call('ZREM', exp, key)
end
local evicted = {}
local count = redis.call('ZCARD', lru)
if count > tonumber(ARGV[3]) then
  evicted = redis.call('ZRANGE', lru, 0, count - tonumber(ARGV[4]) - 1)
  for _, key in ipairs(evicted) do
    redis.call('DEL', prefix .. key)
    redis.call('ZREM', lru, key)
    redis.call('ZREM', exp, key)
  end
end
return {#expired, redis.call('ZCARD', lru), evicted}
"""  # ARGV: entry prefix, now, max_entries, target

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def _encode(value: dict[str, Any]) -> bytes:
    """JSON of ``value`` as UTF-8 (lone surrogates kept: they round-trip)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode(
        "utf-8", "surrogatepass"
    )


def _text(data: bytes | None) -> str | None:
    return None if data is None else data.decode("utf-8", "surrogatepass")


class RedisStore:
    """Entries on the Redis server behind ``link``; safe to share between threads."""

    def __init__(self, link: RedisLink) -> None:
        self._link = link
        self.errors: tuple[type[BaseException], ...] = (RedisUnavailable,)
        self.path: str | None = f"{link.public} (keys {link.prefix}cache:*)"
        self._lru = f"{link.prefix}cache:lru"
        self._exp = f"{link.prefix}cache:exp"
        self._entry_prefix = f"{link.prefix}cache:e:"
        self._record_hits = link.script(_RECORD_HITS)
        self._evict = link.script(_EVICT)
        self._release = link.script(_RELEASE)

    def __repr__(self) -> str:
        return f"RedisStore({self.path!r})"

    def _key(self, key: str) -> str:
        return self._entry_prefix + key

    # -- CacheStore --------------------------------------------------------------------

    def get(self, key: str) -> Entry | None:
        values = self._link.run(lambda r: r.hmget(self._key(key), *_FIELDS))
        if values[0] is None:
            return None
        text, created_at, expires_at, provider, model, endpoint = map(_text, values)
        try:
            value = json.loads(text)
            if not isinstance(value, dict):
                raise TypeError(f"stored response is a {type(value).__name__}")
            created = float(created_at or 0)
            expires = float(expires_at) if expires_at else None
        except (TypeError, ValueError) as exc:
            self.delete(key)
            raise CorruptEntryError(f"cache entry {key[:12]}... was unreadable: {exc}") from exc
        return Entry(key, value, created, expires, provider, model, endpoint)

    def set(self, entries: Sequence[Entry]) -> None:
        def write(redis: Any) -> None:
            pipe = redis.pipeline(transaction=True)
            for entry in entries:
                name = self._key(entry.key)
                pipe.delete(name)
                fields = {
                    "text": _encode(entry.value),
                    "created_at": repr(float(entry.created_at)),
                    "expires_at": "" if entry.expires_at is None else repr(entry.expires_at),
                    "provider": entry.provider or "",
                    "model": entry.model or "",
                    "endpoint": entry.endpoint or "",
                    "hits": 0,
                }
                pipe.hset(name, mapping={k: v for k, v in fields.items() if v is not None})
                pipe.zadd(self._lru, {entry.key: entry.created_at})
                if entry.expires_at is None:
                    pipe.zrem(self._exp, entry.key)
                else:
                    # Redis forgets the entry when its time to live has passed.
                    ttl_ms = max(1, round((entry.expires_at - entry.created_at) * 1000))
                    pipe.pexpire(name, ttl_ms)
                    pipe.zadd(self._exp, {entry.key: entry.expires_at})
            pipe.execute()

        if entries:
            self._link.run(write)

    def delete(self, key: str) -> None:
        def remove(redis: Any) -> None:
            pipe = redis.pipeline(transaction=True)
            pipe.delete(self._key(key))
            pipe.zrem(self._lru, key)
            pipe.zrem(self._exp, key)
            pipe.execute()

        self._link.run(remove)

    def clear(self) -> int:
        def remove_all(redis: Any) -> int:
            removed = 0
            batch: list[bytes] = []
            for name in redis.scan_iter(match=self._entry_prefix + "*", count=500):
                batch.append(name)
                if len(batch) >= 500:
                    removed += redis.delete(*batch)
                    batch.clear()
            if batch:
                removed += redis.delete(*batch)
            redis.delete(self._lru, self._exp)
            return removed

        return self._link.run(remove_all)

    def count(self, now: float | None = None) -> int:
        def counted(redis: Any) -> int:
            pipe = redis.pipeline(transaction=True)
            pipe.zcard(self._lru)
            pipe.zcard(self._exp)
            pipe.zcount(self._exp, "-inf" if now is None else f"({now!r}", "+inf")
            everything, expiring, live_expiring = pipe.execute()
            return everything if now is None else everything - expiring + live_expiring

        return self._link.run(counted)

    def record_hits(self, hits: Sequence[Hit]) -> None:
        if not hits:
            return
        keys = [self._lru, *(self._key(hit.key) for hit in hits)]
        args: list[Any] = []
        for hit in hits:
            args += [hit.count, repr(float(hit.last_hit_at)), hit.key]
        self._link.run(lambda _: self._record_hits(keys, args))

    def evict(self, now: float, *, max_entries: int, target: int) -> Eviction:
        expired, remaining, evicted = self._link.run(
            lambda _: self._evict(
                [self._lru, self._exp], [self._entry_prefix, repr(now), max_entries, target]
            )
        )
        return Eviction(int(expired), tuple(_text(key) for key in evicted), int(remaining))

    def close(self) -> None:
        self._link.close()

    def after_fork(self) -> None:
        return None  # the link makes a new client in a new process by itself

    # -- single-flight across hosts ----------------------------------------------------

    def claim(self, key: str, seconds: float) -> str | None:
        """Become the one caller for ``key`` for at most ``seconds``: a token to
        :meth:`release` with, or None when another caller holds it."""
        token = secrets.token_hex(8)
        name = f"{self._link.prefix}cache:lock:{key}"
        ttl_ms = max(1, round(seconds * 1000))
        taken = self._link.run(lambda redis: redis.set(name, token, nx=True, px=ttl_ms))
        return token if taken else None

    def claimed(self, key: str) -> bool:
        """Whether some caller holds ``key`` now."""
        name = f"{self._link.prefix}cache:lock:{key}"
        return bool(self._link.run(lambda redis: redis.exists(name)))

    def release(self, key: str, token: str) -> None:
        """Give up ``key`` if ``token`` still holds it."""
        name = f"{self._link.prefix}cache:lock:{key}"
        self._link.run(lambda _: self._release([name], [token]))
