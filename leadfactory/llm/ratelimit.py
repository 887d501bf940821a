"""Client-side RPM/TPM limits and provider-imposed pauses, per provider.

A sliding-window log: each admitted request is kept as ``(timestamp, tokens)`` for
``window`` seconds (60 by default), so the counts are exact, and a request's token
estimate can later be replaced by the provider's reported usage (:meth:`RateLimiter.correct`)
or handed back entirely when the call never left the process (:meth:`RateLimiter.release`).

Nothing here sleeps or blocks. :meth:`RateLimiter.acquire` returns either a
:class:`Permit` or a :class:`Denied` saying how long to wait; the caller sleeps
(``time.sleep`` or ``asyncio.sleep``) and asks again. All state sits behind one
``threading.Lock``, held only for short arithmetic (and taken around a fork, so a
forked child never inherits it held: :mod:`.forksafe`). The clock is injected
(``time.monotonic`` by default) so tests run on a fake one.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from .exceptions import LLMConfigurationError
from .forksafe import guard_at_fork

__all__ = [
    "Denied",
    "Permit",
    "RateLimiter",
    "denial_detail",
]

DenyReason = Literal["rpm", "tpm", "paused"]

# Tickets are unique in the process, so a permit handed to the wrong limiter matches nothing.
_tickets = itertools.count(1)


@dataclass(frozen=True)
class Permit:
    """Leave to send one request to ``provider``, charged ``tokens`` against its TPM."""

    provider: str
    tokens: int
    acquired_at: float = field(repr=False)
    ticket: int = field(repr=False)


@dataclass(frozen=True)
class Denied:
    """The request does not fit now; ``wait`` seconds from now it would (``math.inf``: never).

    ``reason`` names the binding limit: ``"rpm"``, ``"tpm"`` or ``"paused"`` (the
    provider asked us to back off with Retry-After); ``detail`` says it in words.
    """

    provider: str
    wait: float
    reason: DenyReason
    detail: str


class _Entry:
    """One admitted request in the window; ``tokens`` changes when corrected."""

    __slots__ = ("at", "ticket", "tokens")

    def __init__(self, at: float, tokens: int, ticket: int) -> None:
        self.at = at
        self.tokens = tokens
        self.ticket = ticket


class _ProviderState:
    __slots__ = ("entries", "by_ticket", "paused_until", "rpm", "tokens", "tpm")

    def __init__(self) -> None:
        self.rpm: int | None = None
        self.tpm: int | None = None
        self.entries: deque[_Entry] = deque()  # oldest first
        self.by_ticket: dict[int, _Entry] = {}
        self.tokens = 0  # sum of entries' tokens
        self.paused_until: float | None = None


def _check_limit(name: str, value: int | None) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise LLMConfigurationError(
            f"{name} must be a positive integer or None (unlimited), got {value!r}",
            metadata={"field": name, "value": value},
        )


class RateLimiter:
    """Per-provider requests-per-minute and tokens-per-minute limits, and pauses.

    Providers never configured are unlimited (their requests are still recorded, so
    :meth:`status` shows their usage). Safe to share between threads; never blocks.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic, window: float = 60.0) -> None:
        if not (isinstance(window, int | float) and math.isfinite(window) and window > 0):
            raise LLMConfigurationError(
                f"window must be a positive number of seconds, got {window!r}",
                metadata={"field": "window", "value": window},
            )
        self._clock = clock
        self._window = float(window)
        self._lock = threading.Lock()
        self._providers: dict[str, _ProviderState] = {}
        guard_at_fork(self)  # a forked child never inherits the lock held

    @property
    def window(self) -> float:
        return self._window

    # -- configuration -------------------------------------------------------------

    def configure(self, provider: str, *, rpm: int | None, tpm: int | None) -> None:
        """Set the limits for ``provider`` (None = unlimited). History is kept."""
        _check_limit("rpm", rpm)
        _check_limit("tpm", tpm)
        with self._lock:
            state = self._state(provider)
            state.rpm = rpm
            state.tpm = tpm

    # -- the request cycle ---------------------------------------------------------

    def acquire(self, provider: str, tokens: int) -> Permit | Denied:
        """Check pause, RPM and TPM together; record the request if it fits."""
        if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 0:
            raise ValueError(f"tokens must be a non-negative integer, got {tokens!r}")
        with self._lock:
            now = self._clock()
            state = self._state(provider)
            self._prune(state, now)

            if state.tpm is not None and tokens > state.tpm:
                return Denied(
                    provider,
                    math.inf,
                    "tpm",
                    f"request estimated at {tokens} tokens can never fit the limit of "
                    f"{state.tpm} tokens per {self._window:g} s",
                )

            waits: dict[DenyReason, float] = {
                "paused": self._pause_left(state, now),
                "rpm": self._rpm_wait(state, now),
                "tpm": self._tpm_wait(state, now, tokens),
            }
            reason = max(waits, key=waits.__getitem__)  # ties go to the first key
            if waits[reason] > 0:
                return Denied(provider, waits[reason], reason, self._detail(state, waits))

            ticket = next(_tickets)
            entry = _Entry(now, tokens, ticket)
            state.entries.append(entry)
            state.by_ticket[ticket] = entry
            state.tokens += tokens
            return Permit(provider, tokens, acquired_at=now, ticket=ticket)

    def correct(self, permit: Permit, actual_tokens: int) -> None:
        """Replace the permit's token estimate with the provider's reported usage.

        No effect if the request has already left the window or was released.
        """
        if isinstance(actual_tokens, bool) or not isinstance(actual_tokens, int):
            raise ValueError(f"actual_tokens must be an integer, got {actual_tokens!r}")
        actual_tokens = max(0, actual_tokens)
        with self._lock:
            state = self._providers.get(permit.provider)
            entry = state.by_ticket.get(permit.ticket) if state else None
            if state is None or entry is None:
                return
            state.tokens += actual_tokens - entry.tokens
            entry.tokens = actual_tokens

    def release(self, permit: Permit) -> None:
        """Give the slot and tokens back: the request never reached the provider.

        Releasing twice, or after the request left the window, does nothing.
        """
        with self._lock:
            state = self._providers.get(permit.provider)
            entry = state.by_ticket.pop(permit.ticket, None) if state else None
            if state is None or entry is None:
                return
            state.entries.remove(entry)  # O(n), but releases are rare
            state.tokens -= entry.tokens

    # -- provider-imposed pauses ---------------------------------------------------

    def pause(self, provider: str, seconds: float) -> None:
        """Deny every acquire for ``provider`` for ``seconds`` (the provider's Retry-After).

        Extends an existing pause, never shortens it; zero, negative or NaN does nothing.
        """
        if not seconds > 0:
            return
        with self._lock:
            state = self._state(provider)
            until = self._clock() + seconds
            if state.paused_until is None or until > state.paused_until:
                state.paused_until = until

    def paused_until(self, provider: str) -> float | None:
        """Clock time at which the current pause ends, or None when not paused."""
        with self._lock:
            state = self._providers.get(provider)
            if state is None or self._pause_left(state, self._clock()) <= 0:
                return None
            return state.paused_until

    # -- inspection ----------------------------------------------------------------

    def status(self, provider: str) -> dict:
        """``rpm``, ``tpm`` (None = unlimited), ``requests_in_window``,
        ``tokens_in_window`` and ``paused_for`` (seconds left, 0 when not paused)."""
        with self._lock:
            now = self._clock()
            state = self._providers.get(provider)
            if state is None:
                return {
                    "rpm": None,
                    "tpm": None,
                    "requests_in_window": 0,
                    "tokens_in_window": 0,
                    "paused_for": 0.0,
                }
            self._prune(state, now)
            return {
                "rpm": state.rpm,
                "tpm": state.tpm,
                "requests_in_window": len(state.entries),
                "tokens_in_window": state.tokens,
                "paused_for": self._pause_left(state, now),
            }

    # -- internals (called with the lock held) --------------------------------------

    def _state(self, provider: str) -> _ProviderState:
        state = self._providers.get(provider)
        if state is None:
            state = self._providers[provider] = _ProviderState()
        return state

    def _prune(self, state: _ProviderState, now: float) -> None:
        horizon = now - self._window
        entries = state.entries
        while entries and entries[0].at <= horizon:
            entry = entries.popleft()
            del state.by_ticket[entry.ticket]
            state.tokens -= entry.tokens

    def _expires(self, entry: _Entry, now: float) -> float:
        return max(0.0, entry.at + self._window - now)

    @staticmethod
    def _pause_left(state: _ProviderState, now: float) -> float:
        if state.paused_until is None:
            return 0.0
        if state.paused_until <= now:
            state.paused_until = None
            return 0.0
        return state.paused_until - now

    def _rpm_wait(self, state: _ProviderState, now: float) -> float:
        if state.rpm is None or len(state.entries) < state.rpm:
            return 0.0
        # The request fits once all but rpm - 1 of the logged requests have aged out.
        return self._expires(state.entries[len(state.entries) - state.rpm], now)

    def _tpm_wait(self, state: _ProviderState, now: float, tokens: int) -> float:
        if state.tpm is None:
            return 0.0
        excess = state.tokens + tokens - state.tpm
        if excess <= 0:
            return 0.0
        for entry in state.entries:  # oldest first: free tokens until the excess is gone
            excess -= entry.tokens
            if excess <= 0:
                return self._expires(entry, now)
        return 0.0  # unreachable: tokens <= tpm was checked before

    def _detail(self, state: _ProviderState, waits: Mapping[DenyReason, float]) -> str:
        usage = (len(state.entries), state.rpm, state.tokens, state.tpm)
        return denial_detail(waits, self._window, *usage)


def denial_detail(
    waits: Mapping[DenyReason, float],
    window: float,
    requests: int,
    rpm: object,
    tokens: int,
    tpm: object,
    where: str = "",
) -> str:
    """Why a permit was denied, for the error a caller sees: the provider's pause and the
    request and token windows that are full (``where``: e.g. " on all hosts")."""
    parts = []
    if waits["paused"] > 0:
        parts.append(f"paused by the provider for {waits['paused']:.3g} s more")
    if waits["rpm"] > 0:
        parts.append(
            f"{requests} requests in the last {window:g} s{where} "
            f"(limit {rpm}); a slot frees in {waits['rpm']:.3g} s"
        )
    if waits["tpm"] > 0:
        parts.append(
            f"{tokens} tokens in the last {window:g} s{where} "
            f"(limit {tpm}); room in {waits['tpm']:.3g} s"
        )
    return "; ".join(parts)
