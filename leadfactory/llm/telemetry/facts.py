"""What the telemetry observers are told: one :class:`CallFacts` per client call, one
:class:`AttemptFacts` per provider attempt (skips and cache hits included), and the
:class:`Observer` protocol that receives them.

The facts are plain typed values filled in by :mod:`.watch` from the operations the
flow yields and the outcomes the drivers send back; observers only read them (the
``span`` slots are the tracer's). Nothing here imports OpenTelemetry or prometheus-client.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ..log import log_event

if TYPE_CHECKING:
    from ..flow import Request

__all__ = ["AttemptFacts", "CallFacts", "Fanout", "Observer"]


@dataclass
class AttemptFacts:
    """One entry of a call's ``attempts[]``: a provider call, a skip or a cache hit.

    ``outcome`` is ``success``, ``error``, ``skipped`` or ``cache_hit``; ``retry`` is 0
    for a provider's first attempt in the call, 1 for its first retry, and so on.
    Times are ``time.time_ns()`` (span timestamps); ``latency_s`` is the flow's own
    measure of the provider call, the one the ledger row keeps.
    """

    provider: str
    model: str | None
    outcome: str = "error"
    retry: int = 0
    reason: str | None = None  # why it was skipped (attempts[] "reason")
    error_class: str | None = None
    detail: str | None = None  # the error's text: content, shown only with capture on
    started_ns: int = 0
    ended_ns: int = 0
    latency_s: float = 0.0
    cost_usd: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    estimated: bool = False  # the charge is the client's estimate, not the provider's usage
    response_model: str | None = None
    response_id: str | None = None
    finish_reasons: tuple[str, ...] = ()
    completion: Any = None  # the answer's messages (content: only with capture on)
    span: Any = None
    token: Any = None  # the tracer's: its span made current during the provider call


@dataclass
class CallFacts:
    """One client call: the request, its attempts in order, and how it ended."""

    request: Request
    strategy: str
    server: dict[str, tuple[str | None, int | None]] = field(default_factory=dict)
    started_ns: int = 0
    ended_ns: int = 0
    duration_s: float = 0.0
    attempts: list[AttemptFacts] = field(default_factory=list)
    budget_refusals: list[str] = field(default_factory=list)  # providers refused by budget
    provider: str | None = None  # who answered
    response_model: str | None = None
    cost_usd: float = 0.0
    cached: bool = False
    error_class: str | None = None
    error_detail: str | None = None
    span: Any = None
    request_attributes: dict[str, Any] = field(default_factory=dict)  # gen_ai.request.*

    @property
    def model(self) -> str | None:
        """The model asked for (the call's override, else the first attempt's)."""
        if self.request.model is not None:
            return self.request.model
        return next((a.model for a in self.attempts if a.model), None)

    @property
    def retries(self) -> int:
        """Attempts that repeated a provider already tried in this call."""
        return sum(1 for a in self.attempts if a.retry > 0)

    def fallbacks(self) -> list[tuple[AttemptFacts, AttemptFacts]]:
        """(before, to) pairs: each provider called after the call left the entry before
        it (an error, or a skip) without an answer."""
        tried = [a for a in self.attempts if a.outcome != "cache_hit"]
        return [
            (tried[i - 1], a)
            for i, a in enumerate(tried)
            if i and a.outcome != "skipped" and a.retry == 0
        ]


class Observer(Protocol):
    """Receives the facts of each call; every method must be cheap and never raise.

    An observer may also have ``live() -> bool``: False while it would keep nothing of a
    call made now (the OpenTelemetry API before an SDK is set); when every observer says
    so, the call is not watched at all. Without it, an observer is always told.
    """

    def call_started(self, call: CallFacts) -> None: ...

    def attempt_started(self, call: CallFacts, attempt: AttemptFacts) -> None: ...

    def attempt_ended(self, call: CallFacts, attempt: AttemptFacts) -> None: ...

    def call_ended(self, call: CallFacts) -> None: ...


def always_live() -> bool:
    """The ``live`` of an observer that has none: always told."""
    return True


class Fanout:
    """Several observers as one, told in order (the tracer first: it opens the spans).

    An observer that raises is logged (once per observer) and the call goes on: telemetry
    never fails a call, and the next observers are still told.
    """

    def __init__(self, observers: list[Observer]) -> None:
        self.observers = observers
        self._call_started = [o.call_started for o in observers]
        self._attempt_started = [o.attempt_started for o in observers]
        self._attempt_ended = [o.attempt_ended for o in observers]
        self._call_ended = [o.call_ended for o in observers]
        self._live = [getattr(o, "live", always_live) for o in observers]
        self._failed: set[int] = set()

    def live(self) -> bool:
        """Whether any observer would keep something of a call made now."""
        return any(live() for live in self._live)

    def call_started(self, call: CallFacts) -> None:
        self._tell(self._call_started, call)

    def attempt_started(self, call: CallFacts, attempt: AttemptFacts) -> None:
        self._tell(self._attempt_started, call, attempt)

    def attempt_ended(self, call: CallFacts, attempt: AttemptFacts) -> None:
        self._tell(self._attempt_ended, call, attempt)

    def call_ended(self, call: CallFacts) -> None:
        self._tell(self._call_ended, call)

    def _tell(self, methods: list[Callable[..., None]], *facts: Any) -> None:
        for method in methods:
            try:
                method(*facts)
            except Exception as error:  # a bug or a broken exporter: never the caller's
                self._report(method, error)

    def _report(self, method: Callable[..., None], error: Exception) -> None:
        owner = getattr(method, "__self__", method)
        if id(owner) not in self._failed:
            self._failed.add(id(owner))
            log_event(
                logging.WARNING,
                f"telemetry: {type(owner).__name__}.{getattr(method, '__name__', '?')} raised "
                f"{type(error).__name__}; the call goes on (reported once per observer)",
            )
