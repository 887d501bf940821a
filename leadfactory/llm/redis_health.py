"""Provider cooldowns (circuit breakers) kept on Redis: a breaker opened on one host
keeps every host away.

:class:`RedisProviderHealth` follows :class:`~leadfactory.llm.health.ProviderHealth`'s
state machine (healthy -> cooling_down -> probing) with the breaker of each provider in
one hash (``health:<provider>`` under the prefix) and each transition one Lua script
timed by the server's clock, so exactly one host probes a provider whose cooldown has
passed. While Redis does not answer, the in-process breakers given as ``local`` decide.

A success clears the provider's hash, and with it the failures any host counted; when
this process's latest check found no hash (no failure counted anywhere) and no failure
was recorded here since, there is nothing to clear and no round trip is made. A failure
another host counts while this process's request is in flight is then cleared by the
next success after a check that sees it, as if this success had come first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .health import HealthCheck, HealthPolicy, ProviderHealth
from .redis_link import RedisLink, RedisUnavailable

__all__ = ["RedisProviderHealth"]

_HEALTHY = HealthCheck(True, "healthy", None, "healthy")

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function cooldown(trips)
  return math.min(tonumber(ARGV[3]), tonumber(ARGV[1]) * tonumber(ARGV[2]) ^ (trips - 1))
end
"""  # ARGV[1..3]: cooldown ms, growth, max cooldown ms

_CHECK = (
    _NOW
    + """
local b = redis.call('HMGET', KEYS[1], 'state', 'failures', 'trips', 'until', 'probe', 'last')
local state = b[1]
if not state then return {'clear'} end
if state == 'healthy' then return {'healthy'} end
local failures, trips = b[2] or '0', tonumber(b[3] or '0')
if state == 'cooling_down' and now < tonumber(b[4]) then
  return {'cooling_down', tonumber(b[4]) - now, failures, b[6] or ''}
end
if state == 'probing' and now < tonumber(b[5]) then
  return {'probing', tonumber(b[5]) - now}
end
redis.call('HSET', KEYS[1], 'state', 'probing', 'probe', now + cooldown(trips))
return {'probe', 0, failures, b[6] or ''}
"""
)

_FAILURE = (
    _NOW
    + """
local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
redis.call('HSET', KEYS[1], 'last', ARGV[5])
local state = redis.call('HGET', KEYS[1], 'state') or 'healthy'
if (state == 'healthy' and failures >= tonumber(ARGV[4])) or state == 'probing' then
  local trips = redis.call('HINCRBY', KEYS[1], 'trips', 1)
  redis.call('HSET', KEYS[1], 'state', 'cooling_down', 'until', now + cooldown(trips))
  redis.call('HDEL', KEYS[1], 'probe')
elseif state == 'healthy' then
  redis.call('HSET', KEYS[1], 'state', 'healthy')
end
redis.call('PEXPIRE', KEYS[1], math.floor(tonumber(ARGV[3]) * 4 + 86400000))
"""
)  # ARGV[4]: failure threshold, ARGV[5]: the error's type name

_STATUS = (
    _NOW
    + """
local b = redis.call('HMGET', KEYS[1], 'state', 'failures', 'trips', 'until', 'probe', 'last')
return {b[1] or 'healthy', b[2] or '0', b[3] or '0', (tonumber(b[4]) or now) - now,
        (tonumber(b[5]) or now) - now, b[6] or ''}
"""
)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisProviderHealth:
    """The :class:`ProviderHealth` interface on Redis, falling back to ``local``."""

    def __init__(self, link: RedisLink, local: ProviderHealth) -> None:
        self._link = link
        self._local = local
        self.policy: HealthPolicy = local.policy
        self._clock: Callable[[], float] = local._clock
        self._check = link.script(_CHECK)
        self._failure = link.script(_FAILURE)
        self._status = link.script(_STATUS)
        self._clear: set[str] = set()  # providers whose latest check found no hash
        self._args = [
            round(self.policy.cooldown * 1000),
            self.policy.growth,
            round(self.policy.max_cooldown * 1000),
        ]

    def __repr__(self) -> str:
        return f"RedisProviderHealth({self._link.public!r})"

    def _key(self, provider: str) -> list[str]:
        return [f"{self._link.prefix}health:{provider}"]

    def _later(self, milliseconds: Any) -> float:
        return self._clock() + int(milliseconds) / 1000

    def check(self, provider: str) -> HealthCheck:
        """May a request go to ``provider`` now (on any host's evidence)?"""
        try:
            found = self._link.run(lambda _: self._check(self._key(provider), self._args))
        except RedisUnavailable:
            return self.check_locally(provider)
        return self.read_check(provider, found)

    def check_locally(self, provider: str) -> HealthCheck:
        """:meth:`check` while Redis does not answer: this process's breaker decides."""
        self._clear.discard(provider)
        return self._local.check(provider)

    def check_command(self, provider: str) -> tuple[str, list[str], list[Any]]:
        """The check's Lua source, keys and arguments, for a script that runs it with
        other work in one round trip (:mod:`.redis_gate`); its result goes to
        :meth:`read_check`."""
        return _CHECK, self._key(provider), self._args

    def read_check(self, provider: str, found: Any) -> HealthCheck:
        """What the check script's result ``found`` says."""
        state = _text(found[0])
        if state == "clear":
            self._clear.add(provider)
        else:
            self._clear.discard(provider)
        if state in ("clear", "healthy"):
            return _HEALTHY
        if state == "probing":
            reason = "a probe request is in flight (another host); waiting for its result"
            return HealthCheck(False, "probing", self._later(found[1]), reason)
        failures, last = _text(found[2]), _text(found[3])
        if state == "cooling_down":
            left = int(found[1]) / 1000
            reason = (
                f"cooling down after {failures} consecutive failures (last: {last}); "
                f"{left:.3g} s left"
            )
            return HealthCheck(False, "cooling_down", self._later(found[1]), reason)
        reason = f"probe after {failures} consecutive failures (last: {last})"
        return HealthCheck(True, "probing", None, reason)

    def record_success(self, provider: str) -> None:
        """Close the breaker for every host (nothing to do when none was counted: see
        the module docstring)."""
        if provider in self._clear:
            return
        try:
            self._link.run(lambda redis: redis.delete(*self._key(provider)))
        except RedisUnavailable:
            self._local.record_success(provider)

    def record_failure(self, provider: str, error: BaseException) -> None:
        """Count ``error`` (if of a counted kind) towards every host's breaker."""
        if not self.policy.counts(error):
            return
        self._clear.discard(provider)
        args = [*self._args, self.policy.failure_threshold, type(error).__name__]
        try:
            self._link.run(lambda _: self._failure(self._key(provider), args))
        except RedisUnavailable:
            self._local.record_failure(provider, error)

    def status(self, provider: str) -> dict[str, Any]:
        """As :meth:`ProviderHealth.status`, for the breaker every host shares."""
        try:
            found = self._link.run(lambda _: self._status(self._key(provider), self._args))
        except RedisUnavailable:
            return self._local.status(provider)
        state, failures, trips = _text(found[0]), int(found[1]), int(found[2])
        left, probe_left, last = int(found[3]), int(found[4]), _text(found[5])
        cooling = state == "cooling_down"
        return {
            "state": state,
            "consecutive_failures": failures,
            "cooling_down_until": self._later(left) if cooling else None,
            "seconds_left": max(0.0, left / 1000) if cooling else 0.0,
            "cooldown": self.policy.cooldown_after(trips) if trips else None,
            "last_error": last or None,
            "probe_deadline": self._later(probe_left) if state == "probing" else None,
        }
