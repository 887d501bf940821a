"""Provider health: a small circuit breaker per provider.

After ``failure_threshold`` consecutive failures of a counted kind (outage or bad
credentials, see :data:`COUNTED_FAILURES`) a provider cools down. When the cooldown has
passed, the next :meth:`ProviderHealth.check` lets exactly one caller through as a
probe; its success closes the breaker, its counted failure re-opens it with a longer
cooldown (``cooldown * growth ** n``, capped at ``max_cooldown``). A probe that never
reports is given up on after one cooldown length, and another probe is allowed.

::

    healthy --threshold counted failures--> cooling_down --cooldown passed, check()--> probing
       ^                                         ^                                     |
       |                                         +------- counted failure (grow) ------+
       +---------------------------- success (from any state) -------------------------+

Nothing here sleeps or blocks; state sits behind one ``threading.Lock`` (taken around a
fork: :mod:`.forksafe`) and the clock is injected (``time.monotonic`` by default).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from .exceptions import (
    LLMAuthenticationError,
    LLMConfigurationError,
    LLMConnectionError,
    LLMProviderError,
    LLMStreamInterruptedError,
)
from .forksafe import guard_at_fork

__all__ = [
    "COUNTED_FAILURES",
    "HealthCheck",
    "HealthPolicy",
    "HealthState",
    "ProviderHealth",
]

HealthState = Literal["healthy", "cooling_down", "probing"]

#: Errors that signal an outage or a bad credential. Others (rate limit, quota,
#: validation, model not found) neither count towards a trip nor break a streak.
COUNTED_FAILURES: tuple[type[BaseException], ...] = (
    LLMConnectionError,  # includes LLMTimeoutError
    LLMProviderError,
    LLMAuthenticationError,
    LLMStreamInterruptedError,  # cut, stalled or broken after its first text (not left)
)


@dataclass(frozen=True)
class HealthPolicy:
    """When to stop sending requests to a provider, and for how long."""

    failure_threshold: int = 3  # consecutive counted failures before cooling down
    cooldown: float = 30.0  # first cooldown, seconds
    growth: float = 2.0  # each failed probe multiplies the cooldown
    max_cooldown: float = 600.0  # cap
    counted: tuple[type[BaseException], ...] = COUNTED_FAILURES

    def __post_init__(self) -> None:
        rules = {
            "failure_threshold": isinstance(self.failure_threshold, int)
            and not isinstance(self.failure_threshold, bool)
            and self.failure_threshold >= 1,
            "cooldown": _finite(self.cooldown) and self.cooldown > 0,
            "growth": _finite(self.growth) and self.growth >= 1,
            "max_cooldown": _finite(self.max_cooldown) and self.max_cooldown >= self.cooldown,
        }
        for name, ok in rules.items():
            if not ok:
                value = getattr(self, name)
                raise LLMConfigurationError(
                    f"HealthPolicy.{name} is invalid: {value!r} (failure_threshold >= 1, "
                    "cooldown > 0, growth >= 1, max_cooldown >= cooldown)",
                    metadata={"field": name, "value": value},
                )

    def counts(self, error: BaseException) -> bool:
        """Whether ``error`` counts towards a trip: of a counted kind, and not raised in
        this process (``metadata["local_error"]``, e.g. a cassette without the request)."""
        return isinstance(error, self.counted) and not getattr(error, "metadata", {}).get(
            "local_error"
        )

    def cooldown_after(self, trips: int) -> float:
        """Cooldown length for the ``trips``-th consecutive opening (1 = first)."""
        return min(self.max_cooldown, self.cooldown * self.growth ** (trips - 1))


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class HealthCheck:
    """Whether a request may go to the provider now.

    ``until`` is a clock time: the end of the cooldown, or (while a probe is in flight)
    when that probe will be given up on; None when healthy or when this caller is the probe.
    """

    allowed: bool
    state: HealthState
    until: float | None
    reason: str


class _Breaker:
    __slots__ = ("failures", "last_error", "probe_deadline", "state", "trips", "until")

    def __init__(self) -> None:
        self.state: HealthState = "healthy"
        self.failures = 0  # consecutive counted failures
        self.trips = 0  # consecutive openings without a success in between
        self.until: float | None = None  # end of the current cooldown
        self.probe_deadline: float | None = None  # when an unanswered probe is given up
        self.last_error: str | None = None  # type name only: messages stay out of status


_HEALTHY = HealthCheck(True, "healthy", None, "healthy")


class ProviderHealth:
    """Per-provider circuit breakers sharing one :class:`HealthPolicy`. Thread-safe."""

    def __init__(
        self, policy: HealthPolicy = HealthPolicy(), clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.policy = policy
        self._clock = clock
        self._lock = threading.Lock()
        self._breakers: dict[str, _Breaker] = {}
        guard_at_fork(self)  # a forked child never inherits the lock held

    def check(self, provider: str) -> HealthCheck:
        """May a request go to ``provider`` now? Claims the probe when one is due."""
        with self._lock:
            breaker = self._breakers.get(provider)
            if breaker is None or breaker.state == "healthy":
                return _HEALTHY
            now = self._clock()
            if breaker.state == "cooling_down" and now < breaker.until:
                return HealthCheck(
                    False,
                    "cooling_down",
                    breaker.until,
                    f"cooling down after {breaker.failures} consecutive failures "
                    f"(last: {breaker.last_error}); {breaker.until - now:.3g} s left",
                )
            if breaker.state == "probing" and now < breaker.probe_deadline:
                return HealthCheck(
                    False,
                    "probing",
                    breaker.probe_deadline,
                    "a probe request is in flight; waiting for its result",
                )
            # Cooldown over, or the last probe never reported: this caller is the probe.
            breaker.state = "probing"
            breaker.probe_deadline = now + self.policy.cooldown_after(breaker.trips)
            return HealthCheck(
                True,
                "probing",
                None,
                f"probe after {breaker.failures} consecutive failures (last: {breaker.last_error})",
            )

    def record_success(self, provider: str) -> None:
        """Close the breaker; reset the failure streak and the cooldown growth."""
        with self._lock:
            self._breakers.pop(provider, None)

    def record_failure(self, provider: str, error: BaseException) -> None:
        """Count ``error`` if the policy :meth:`~HealthPolicy.counts` it; trip or re-open
        as the policy says."""
        if not self.policy.counts(error):
            return
        with self._lock:
            breaker = self._breakers.setdefault(provider, _Breaker())
            breaker.failures += 1
            breaker.last_error = type(error).__name__
            opens = (
                breaker.state == "healthy" and breaker.failures >= self.policy.failure_threshold
            ) or breaker.state == "probing"
            if opens:
                breaker.trips += 1
                breaker.state = "cooling_down"
                breaker.until = self._clock() + self.policy.cooldown_after(breaker.trips)
                breaker.probe_deadline = None
            # While cooling down, late failures from calls already in flight only count.

    def status(self, provider: str) -> dict:
        """``state``, ``consecutive_failures``, ``cooling_down_until`` (clock time or
        None), ``seconds_left`` (of the cooldown, 0 when over or not cooling), plus
        ``cooldown`` (current length), ``last_error`` (type name) and ``probe_deadline``."""
        with self._lock:
            breaker = self._breakers.get(provider) or _Breaker()
            now = self._clock()
            cooling = breaker.state == "cooling_down"
            return {
                "state": breaker.state,
                "consecutive_failures": breaker.failures,
                "cooling_down_until": breaker.until if cooling else None,
                "seconds_left": max(0.0, breaker.until - now) if cooling else 0.0,
                "cooldown": self.policy.cooldown_after(breaker.trips) if breaker.trips else None,
                "last_error": breaker.last_error,
                "probe_deadline": breaker.probe_deadline,
            }
