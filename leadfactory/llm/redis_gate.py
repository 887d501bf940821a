"""A request's breaker check and its rate-limit admission in one Redis round trip.

The flow asks the breaker (:meth:`Health.check`) and then the limiter
(:meth:`Limiter.acquire`) with nothing in between that reads or writes shared state.
When both live on the same Redis server (``LLM_REDIS_URL``), :func:`check_and_acquire`
runs the two scripts as one: the breaker's check (:mod:`.redis_health`), then, only if
it lets the request through, the admission (:mod:`.redis_limits`), atomically and in
that order, with the limiter's held-back corrections in the same pipeline. A client call
then makes one round trip to Redis instead of two. Otherwise (in-process state, or
Redis away) it is the check alone, and the flow acquires its permit as before.
"""

from __future__ import annotations

import re
import weakref
from typing import Any

from .health import HealthCheck
from .ratelimit import Denied, Permit
from .redis_health import _CHECK, RedisProviderHealth
from .redis_limits import _ACQUIRE, RedisRateLimiter
from .redis_link import RedisLink, RedisUnavailable

__all__ = ["check_and_acquire"]

_LIMIT_KEYS, _LIMIT_ARGS = 5, 4  # what the admission takes: KEYS[1..5], ARGV[1..4]


def _shifted(source: str) -> str:
    """``source`` reading its keys and arguments after the admission's."""
    source = re.sub(r"KEYS\[(\d+)\]", lambda m: f"KEYS[{int(m[1]) + _LIMIT_KEYS}]", source)
    return re.sub(r"ARGV\[(\d+)\]", lambda m: f"ARGV[{int(m[1]) + _LIMIT_ARGS}]", source)


# Returns {check} when the breaker keeps the request away, else {check, admission}.
_JOINT = f"""
local function breaker()
{_shifted(_CHECK)}
end
local function admit()
{_ACQUIRE}
end
local found = breaker()
if found[1] == 'cooling_down' or found[1] == 'probing' then return {{found}} end
return {{found, admit()}}
"""

_SCRIPTS: weakref.WeakKeyDictionary[RedisLink, Any] = weakref.WeakKeyDictionary()


def check_and_acquire(
    health: Any, limiter: Any, provider: str, tokens: int
) -> tuple[HealthCheck, Permit | Denied | None]:
    """``health.check(provider)``, and when it allows the request and both are on one
    Redis server, ``limiter.acquire(provider, tokens)`` in the same round trip; the
    permit is None when not taken here (the caller acquires it then)."""
    if not (
        isinstance(limiter, RedisRateLimiter)
        and isinstance(health, RedisProviderHealth)
        and limiter._link is health._link
    ):
        return health.check(provider), None
    admission = limiter.acquire_command(provider, tokens)
    if admission is None:
        return health.check(provider), None
    link: RedisLink = limiter._link
    script = _SCRIPTS.get(link)
    if script is None:
        script = _SCRIPTS[link] = link.script(_JOINT)
    _, check_keys, check_args = health.check_command(provider)
    keys, args = admission
    try:
        found = limiter._send(script, [*keys, *check_keys], [*args, *check_args])
    except RedisUnavailable:
        return health.check_locally(provider), None
    check = health.read_check(provider, found[0])
    if len(found) < 2:
        return check, None
    return check, limiter.read_acquire(provider, tokens, found[1])
