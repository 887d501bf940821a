"""RPM/TPM windows and Retry-After pauses kept on Redis, shared by every process and host.

:class:`RedisRateLimiter` does what :class:`~leadfactory.llm.ratelimit.RateLimiter`
does, with the same sliding-window log, but on the server: each admitted request is a
member of a sorted set scored by the server's clock (``TIME``, so hosts' clocks do not
matter), its token estimate in a hash, the window's token sum in a counter. Admission,
correction by real usage and release are each one Lua script, so two hosts never both
take the last slot. Keys, under the prefix::

    limits:<provider>:log     sorted set: ticket -> admitted at (ms, server clock)
    limits:<provider>:tokens  hash: ticket -> tokens
    limits:<provider>:total   tokens in the window
    limits:<provider>:pause   end of a provider-imposed pause (ms, server clock)
    limits:tickets            ticket counter

A correction by real usage is not a round trip of its own: it is sent, in one pipeline,
with this limiter's next command to the server (the next request's admission, a
release, a pause, a status) or when the client closes, so until then the window holds
the request's estimate.
The limits themselves are this process's configuration (every host should set the
same). While Redis does not answer, the in-process limiter given as ``local`` decides,
so limits hold per process until Redis is back; permits are marked by their ticket
(negative: Redis, positive: local) so each is corrected where it was taken.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Callable
from typing import Any

from .forksafe import guard_at_fork
from .ratelimit import Denied, DenyReason, Permit, RateLimiter, denial_detail
from .redis_link import RedisLink, RedisUnavailable

__all__ = ["RedisRateLimiter"]

# Drop the requests that left the window (KEYS 1-3: log, tokens, total; ARGV[1]: window ms).
_PRUNE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
while true do
  local old = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - window, 'LIMIT', 0, 500)
  if #old == 0 then break end
  local freed = 0
  for _, n in ipairs(redis.call('HMGET', KEYS[2], unpack(old))) do
    freed = freed + (tonumber(n) or 0)
  end
  redis.call('ZREM', KEYS[1], unpack(old))
  redis.call('HDEL', KEYS[2], unpack(old))
  redis.call('DECRBY', KEYS[3], freed)
end
local count = redis.call('ZCARD', KEYS[1])
local total = tonumber(redis.call('GET', KEYS[3]) or '0')
local paused = math.max(0, tonumber(redis.call('GET', KEYS[4]) or '0') - now)
"""

# Admit one request if pause, RPM and TPM allow (ARGV: window, rpm, tpm, tokens; 0 = none).
_ACQUIRE = (
    _PRUNE
    + """
local rpm, tpm, tokens = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local rpm_wait, tpm_wait = 0, 0
if rpm > 0 and count >= rpm then
  local oldest = redis.call('ZRANGE', KEYS[1], count - rpm, count - rpm, 'WITHSCORES')
  rpm_wait = math.max(0, tonumber(oldest[2]) + window - now)
end
if tpm > 0 and total + tokens > tpm then
  local excess, start = total + tokens - tpm, 0
  while excess > 0 and tpm_wait == 0 do
    local batch = redis.call('ZRANGE', KEYS[1], start, start + 99, 'WITHSCORES')
    if #batch == 0 then break end
    for i = 1, #batch, 2 do
      excess = excess - (tonumber(redis.call('HGET', KEYS[2], batch[i])) or 0)
      if excess <= 0 then
        tpm_wait = math.max(1, tonumber(batch[i + 1]) + window - now)
        break
      end
    end
    start = start + 100
  end
end
if paused > 0 or rpm_wait > 0 or tpm_wait > 0 then
  return {0, paused, rpm_wait, tpm_wait, count, total}
end
local ticket = redis.call('INCR', KEYS[5])
redis.call('ZADD', KEYS[1], now, ticket)
redis.call('HSET', KEYS[2], ticket, tokens)
redis.call('INCRBY', KEYS[3], tokens)
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], window + 1000) end
return {ticket}
"""
)

_STATUS = _PRUNE + "\nreturn {count, total, paused}\n"

_CORRECT = """
local old = redis.call('HGET', KEYS[2], ARGV[1])
if not old then return 0 end
if ARGV[2] == 'release' then
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('HDEL', KEYS[2], ARGV[1])
  redis.call('DECRBY', KEYS[3], old)
else
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
  redis.call('INCRBY', KEYS[3], tonumber(ARGV[2]) - tonumber(old))
end
return 1
"""  # ARGV: ticket, new token count or 'release'

_PAUSE = """
local t = redis.call('TIME')
local untill = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[1])
if untill > tonumber(redis.call('GET', KEYS[1]) or '0') then
  redis.call('SET', KEYS[1], untill, 'PX', ARGV[1])
end
"""  # ARGV: pause length in ms; extends, never shortens


_HELD = 64  # corrections held back at most: more are sent at once


class RedisRateLimiter:
    """The :class:`RateLimiter` interface on Redis, falling back to ``local``."""

    checks_health_too = True  # with a RedisProviderHealth: one round trip (redis_gate)

    def __init__(self, link: RedisLink, local: RateLimiter) -> None:
        self._link = link
        self._local = local
        self._clock: Callable[[], float] = local._clock
        self._limits: dict[str, tuple[int | None, int | None]] = {}
        self._acquire = link.script(_ACQUIRE)
        self._status = link.script(_STATUS)
        self._correct = link.script(_CORRECT)
        self._pause = link.script(_PAUSE)
        self._corrections: list[tuple[Any, list[str], list[Any]]] = []  # sent with the next
        self._lock = threading.Lock()  # guards the list only
        guard_at_fork(self)  # a forked child never inherits it held

    def __repr__(self) -> str:
        return f"RedisRateLimiter({self._link.public!r}, window={self.window:g})"

    @property
    def window(self) -> float:
        return self._local.window

    @property
    def shared(self) -> bool:
        """Whether the windows are on Redis now (False while it is away)."""
        return self._link.answering

    def _keys(self, provider: str) -> list[str]:
        base = f"{self._link.prefix}limits:{provider}:"
        return [base + "log", base + "tokens", base + "total", base + "pause"]

    def configure(self, provider: str, *, rpm: int | None, tpm: int | None) -> None:
        """Set this process's limits for ``provider`` (None = unlimited)."""
        self._local.configure(provider, rpm=rpm, tpm=tpm)  # checks the values
        self._limits[provider] = (rpm, tpm)

    def acquire(self, provider: str, tokens: int) -> Permit | Denied:
        """Check pause, RPM and TPM on the server; record the request if it fits."""
        command = self.acquire_command(provider, tokens)
        if command is None:  # never fits: the same answer
            return self._local.acquire(provider, tokens)
        try:
            result = self._send(self._acquire, *command)
        except RedisUnavailable:
            return self._local.acquire(provider, tokens)
        return self.read_acquire(provider, tokens, result)

    def acquire_command(self, provider: str, tokens: int) -> tuple[list[str], list[Any]] | None:
        """The admission script's keys and arguments (None when ``tokens`` can never
        fit: the local limiter answers that); its result goes to :meth:`read_acquire`."""
        if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 0:
            raise ValueError(f"tokens must be a non-negative integer, got {tokens!r}")
        rpm, tpm = self._limits.get(provider, (None, None))
        if tpm is not None and tokens > tpm:
            return None
        keys = [*self._keys(provider), f"{self._link.prefix}limits:tickets"]
        return keys, [round(self.window * 1000), rpm or 0, tpm or 0, tokens]

    def read_acquire(self, provider: str, tokens: int, result: Any) -> Permit | Denied:
        """What the admission script's ``result`` says."""
        if int(result[0]) > 0:
            return Permit(provider, tokens, acquired_at=self._clock(), ticket=-int(result[0]))
        rpm, tpm = self._limits.get(provider, (None, None))
        paused, rpm_wait, tpm_wait, count, total = (int(x) for x in result[1:])
        waits: dict[DenyReason, float] = {
            "paused": paused / 1000,
            "rpm": rpm_wait / 1000,
            "tpm": tpm_wait / 1000,
        }
        reason = max(waits, key=waits.__getitem__)
        return Denied(provider, waits[reason], reason, self._detail(waits, count, total, rpm, tpm))

    def correct(self, permit: Permit, actual_tokens: int) -> None:
        """Replace the permit's estimate with the provider's reported usage."""
        if isinstance(actual_tokens, bool) or not isinstance(actual_tokens, int):
            raise ValueError(f"actual_tokens must be an integer, got {actual_tokens!r}")
        self._change(permit, str(max(0, actual_tokens)))

    def release(self, permit: Permit) -> None:
        """Give the slot and tokens back: the request never reached the provider."""
        self._change(permit, "release")

    def _change(self, permit: Permit, change: str) -> None:
        if permit.ticket > 0:  # taken from the local limiter while Redis was away
            if change == "release":
                self._local.release(permit)
            else:
                self._local.correct(permit, int(change))
            return
        command = (self._correct, self._keys(permit.provider)[:3], [-permit.ticket, change])
        if change == "release":
            with contextlib.suppress(RedisUnavailable):  # else it leaves the window by itself
                self._send(*command)
            return
        with self._lock:  # held back: sent with the next command (module docstring)
            self._corrections.append(command)
            if len(self._corrections) < _HELD:
                return
        self.flush()  # too many held

    def flush(self) -> None:
        """Send the corrections held back now (the client does when it closes); one
        lost with the server leaves its estimate in the window until the request
        leaves it."""
        with contextlib.suppress(RedisUnavailable):
            self._send()

    def pause(self, provider: str, seconds: float, *, cap: float = math.inf) -> float:
        """Pause ``provider`` on every host for ``seconds``, at most ``cap`` (extends,
        never shortens); returns the pause asked for, capped (0 when none)."""
        if not seconds > 0:
            return 0.0
        seconds = min(seconds, cap)
        milliseconds = max(1, math.ceil(min(seconds, 10**9) * 1000))
        try:
            self._send(self._pause, [self._keys(provider)[3]], [milliseconds])
        except RedisUnavailable:
            self._local.pause(provider, seconds)
        return seconds

    def paused_until(self, provider: str) -> float | None:
        """This process's clock time at which the pause ends, or None."""
        left = self.status(provider)["paused_for"]
        return self._clock() + left if left > 0 else None

    def status(self, provider: str) -> dict[str, Any]:
        """As :meth:`RateLimiter.status`, counted over every host."""
        try:
            count, total, paused = self._send(
                self._status, self._keys(provider), [round(self.window * 1000)]
            )
        except RedisUnavailable:
            return self._local.status(provider)
        rpm, tpm = self._limits.get(provider, (None, None))
        return {
            "rpm": rpm,
            "tpm": tpm,
            "requests_in_window": int(count),
            "tokens_in_window": int(total),
            "paused_for": int(paused) / 1000,
        }

    def _send(self, *command: Any) -> Any:
        """Run ``command`` (script, keys, args) after the corrections held back, in one
        round trip; its result. No command: only the corrections."""
        with self._lock:
            calls, self._corrections = [*self._corrections, *([command] if command else [])], []
        return self._link.run_scripts(calls)[-1] if calls else None

    def _detail(
        self, waits: dict[DenyReason, float], count: int, total: int, rpm: Any, tpm: Any
    ) -> str:
        return denial_detail(waits, self.window, count, rpm, total, tpm, " on all hosts")
