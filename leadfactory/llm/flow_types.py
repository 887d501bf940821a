"""The vocabulary of the fallback flow (:mod:`.flow`): what it yields to its driver
(:class:`Call`, :class:`Sleep`, a ledger write), what the driver sends back
(:class:`Outcome`), the request it walks (:class:`Request`) and the shared state it
reads and updates (:class:`Services`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .config import LLMConfig
from .ledger import Budget, Ledger, LedgerWrite
from .providers import call_arguments
from .shared_state import Health, Limiter

__all__ = ["Call", "Deferred", "Operation", "Outcome", "Request", "Services", "Sleep"]


@dataclass(frozen=True)
class Call:
    """Perform one provider call with these LiteLLM arguments."""

    provider: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class Sleep:
    """Wait this many seconds (backoff between retries, or for a rate limit to clear)."""

    seconds: float


@dataclass(frozen=True)
class Outcome:
    """What the driver saw: a response dict (or a ledger result), or the exception raised."""

    response: dict[str, Any] | None = None
    error: BaseException | None = None
    value: Any = None  # what a ledger write returned


@dataclass
class Deferred:
    """What the flow gets for a :class:`Reserve` whose answer the driver reads just
    before the request leaves (the sync client on PostgreSQL: :mod:`.deferred`).

    ``outcome`` is then the reservation's own (its ``value`` the Reservation, or its
    ``error`` the refusal), set by the driver before it answers the :class:`Call`, or
    when the call is interrupted; a refusal means the request was never sent.
    """

    outcome: Outcome | None = None


@dataclass(frozen=True)
class Request:
    """One validated chat request."""

    request_id: str
    messages: list[dict[str, Any]]
    params: dict[str, Any]  # temperature, max_tokens and other generation parameters
    max_tokens: int
    prompt_tokens: int | None = None  # counted on first need: cache hits never pay for it
    model: str | None = None  # overrides each provider's default_model
    pinned_provider: str | None = None
    caller: str | None = None


@dataclass
class Services:
    """The shared state one client's requests read and update."""

    config: LLMConfig
    limiter: Limiter  # this process's RateLimiter, or the Redis one (shared_state)
    health: Health
    ledger: Ledger  # CostLedger, or the untracked stand-in
    budget: Budget
    timer: Callable[[], float]  # monotonic seconds, for latency
    log: Callable[..., None]
    count_tokens: Callable[[list[dict[str, Any]]], int]  # prompt tokens of messages
    arguments_for: Callable[..., dict[str, Any]] = call_arguments  # a Call's LiteLLM arguments
    # A write made while the flow closes (it cannot yield then): the async driver queues
    # it behind the writes under way; by default it is written inline.
    settle_on_close: Callable[[LedgerWrite], None] | None = None

    def __post_init__(self) -> None:
        if self.settle_on_close is None:
            self.settle_on_close = self._settle_inline

    def _settle_inline(self, write: LedgerWrite) -> None:
        with contextlib.suppress(ValueError):  # the settlement under way got there first
            self.ledger.write(write)


# A ledger write is done inline (the sync client) or on the ledger's writer thread (the
# async client, see leadfactory.llm.ledger.writer); its result comes back as ``value``.
Operation = Call | Sleep | LedgerWrite
