"""The metrics: one table of instruments, and the observer that feeds them.

Names, units and bucket boundaries of the two GenAI instruments follow the OpenTelemetry
semantic conventions (``gen_ai.client.operation.duration``, recorded per provider
attempt, and ``gen_ai.client.token.usage``, the tokens each attempt is charged); the
others are this library's (``leadfactory.llm.*``). A sink (:mod:`.sinks`) makes the
instruments real: through the OpenTelemetry metrics API, or in a prometheus-client
registry, where a name becomes ``gen_ai_client_operation_duration_seconds`` and a
label ``gen_ai_provider_name`` (the mapping OpenTelemetry's Prometheus exporter uses).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from .facts import AttemptFacts, CallFacts, always_live

__all__ = ["INSTRUMENTS", "Instrument", "MetricObserver", "Sink"]

# Recommended ExplicitBucketBoundaries of the GenAI conventions.
DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48)
DURATION_BUCKETS += (40.96, 81.92)
TOKEN_BUCKETS = tuple(float(4**n) for n in range(14))  # 1, 4, 16, ... 67108864

OPERATION = "gen_ai.operation.name"
PROVIDER = "gen_ai.provider.name"
REQUEST_MODEL = "gen_ai.request.model"
RESPONSE_MODEL = "gen_ai.response.model"
TOKEN_TYPE = "gen_ai.token.type"
ERROR = "error.type"
OUTCOME = "leadfactory.llm.outcome"
REASON = "leadfactory.llm.reason"
PERIOD = "leadfactory.llm.budget.period"

_UNIT_SUFFIX = {"s": "_seconds", "USD": "_usd"}


@dataclass(frozen=True)
class Instrument:
    """One metric: its OpenTelemetry name, kind, unit, description and label names."""

    name: str
    kind: Literal["counter", "histogram", "gauge"]
    unit: str
    description: str
    labels: tuple[str, ...]
    buckets: tuple[float, ...] = ()

    @property
    def prometheus_name(self) -> str:
        """The Prometheus name (counters get ``_total`` from prometheus-client)."""
        return self.name.replace(".", "_") + _UNIT_SUFFIX.get(self.unit, "")

    @property
    def prometheus_labels(self) -> tuple[str, ...]:
        return tuple(label.replace(".", "_") for label in self.labels)


OPERATION_DURATION = Instrument(
    "gen_ai.client.operation.duration", "histogram", "s",
    "GenAI operation duration: one provider attempt, as the ledger times it.",
    (OPERATION, PROVIDER, REQUEST_MODEL, RESPONSE_MODEL, ERROR), DURATION_BUCKETS,
)  # fmt: skip
TOKEN_USAGE = Instrument(
    "gen_ai.client.token.usage", "histogram", "{token}",
    "Number of input and output tokens each provider attempt is charged.",
    (OPERATION, PROVIDER, REQUEST_MODEL, RESPONSE_MODEL, TOKEN_TYPE), TOKEN_BUCKETS,
)  # fmt: skip
REQUEST_DURATION = Instrument(
    "leadfactory.llm.request.duration", "histogram", "s",
    "One client call from the flow's start to its answer or error: fallbacks, retries, "
    "waits and cache hits included.",
    (PROVIDER, OUTCOME), DURATION_BUCKETS,
)  # fmt: skip
ATTEMPTS = Instrument(
    "leadfactory.llm.attempts", "counter", "{attempt}",
    "attempts[] entries: provider calls by outcome (success, error), skips (with their "
    "reason) and cache hits.",
    (PROVIDER, REQUEST_MODEL, OUTCOME, ERROR, REASON),
)  # fmt: skip
FALLBACKS = Instrument(
    "leadfactory.llm.fallbacks", "counter", "{fallback}",
    "Providers called after the call left an earlier one without an answer; reason: "
    "that one's error class or skip reason.",
    (PROVIDER, REASON),
)  # fmt: skip
CACHE_HITS = Instrument(
    "leadfactory.llm.cache.hits", "counter", "{hit}",
    "Calls answered from the response cache.", (PROVIDER, REQUEST_MODEL),
)  # fmt: skip
BUDGET_REFUSALS = Instrument(
    "leadfactory.llm.budget.refusals", "counter", "{refusal}",
    "Reservations refused by a budget (or by a ledger that could not be reached).",
    (PROVIDER,),
)  # fmt: skip
COST = Instrument(
    "leadfactory.llm.cost", "counter", "USD",
    "Dollars charged, as settled in the ledger.", (PROVIDER, REQUEST_MODEL),
)  # fmt: skip
AVAILABLE = Instrument(
    "leadfactory.llm.provider.available", "gauge", "1",
    "1 when the provider may be called now: enabled, not cooling down, not paused.",
    (PROVIDER,),
)  # fmt: skip
COOLDOWN = Instrument(
    "leadfactory.llm.provider.cooldown", "gauge", "s",
    "Seconds left of the provider's cooldown (0: not cooling down).", (PROVIDER,),
)  # fmt: skip
PAUSE = Instrument(
    "leadfactory.llm.provider.pause", "gauge", "s",
    "Seconds left of a Retry-After pause the provider asked for (0: not paused).",
    (PROVIDER,),
)  # fmt: skip
BUDGET_SPENT = Instrument(
    "leadfactory.llm.budget.spent", "gauge", "USD",
    "Spend counted against the budget of the current period (day, month).", (PERIOD,),
)  # fmt: skip
BUDGET_LIMIT = Instrument(
    "leadfactory.llm.budget.limit", "gauge", "USD",
    "The budget of the period (absent when there is no limit).", (PERIOD,),
)  # fmt: skip

INSTRUMENTS = (
    OPERATION_DURATION, TOKEN_USAGE, REQUEST_DURATION, ATTEMPTS, FALLBACKS, CACHE_HITS,
    BUDGET_REFUSALS, COST, AVAILABLE, COOLDOWN, PAUSE, BUDGET_SPENT, BUDGET_LIMIT,
)  # fmt: skip


class Sink(Protocol):
    """Where measurements go: label values in the order of the instrument's labels."""

    def add(self, instrument: Instrument, value: float, labels: tuple[str, ...]) -> None: ...

    def record(self, instrument: Instrument, value: float, labels: tuple[str, ...]) -> None: ...


class MetricObserver:
    """Turns the facts of each call into measurements for ``sink``."""

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.live = getattr(sink, "live", always_live)  # the sink's: whether it keeps anything now

    def call_started(self, call: CallFacts) -> None:
        return None

    def attempt_started(self, call: CallFacts, attempt: AttemptFacts) -> None:
        return None

    def attempt_ended(self, call: CallFacts, attempt: AttemptFacts) -> None:
        self.attempt(attempt)

    def attempt(self, attempt: AttemptFacts) -> None:
        """The measurements of one attempt (also fed from ledger rows: .ledger_feed)."""
        add, record = self.sink.add, self.sink.record
        provider, model = attempt.provider, attempt.model or ""
        error, outcome = attempt.error_class or "", attempt.outcome
        add(ATTEMPTS, 1, (provider, model, outcome, error, attempt.reason or ""))
        if outcome == "cache_hit":
            add(CACHE_HITS, 1, (provider, model))
            return
        if outcome == "skipped":
            return
        response_model = attempt.response_model or ""
        record(
            OPERATION_DURATION, attempt.latency_s, ("chat", provider, model, response_model, error)
        )
        add(COST, attempt.cost_usd, (provider, model))
        if attempt.input_tokens or attempt.output_tokens:
            for kind, tokens in (
                ("input", attempt.input_tokens),
                ("output", attempt.output_tokens),
            ):
                record(TOKEN_USAGE, tokens, ("chat", provider, model, response_model, kind))

    def call_ended(self, call: CallFacts) -> None:
        add = self.sink.add
        outcome = "cache_hit" if call.cached else "error" if call.error_class else "success"
        self.sink.record(REQUEST_DURATION, call.duration_s, (call.provider or "", outcome))
        for before, to in call.fallbacks():
            add(FALLBACKS, 1, (to.provider, before.reason or before.error_class or "error"))
        for provider in call.budget_refusals:
            add(BUDGET_REFUSALS, 1, (provider,))
