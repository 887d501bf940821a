"""The ledger's writes as values: one small frozen dataclass per kind of write.

The fallback flow yields them, the drivers hand them to the ledger (or to its writer
thread), and each ledger dispatches on the type (:meth:`Ledger.write`). A write is
checked by :func:`check_write` inside the ledger, so a bad one in a batch fails alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .budget import Budget, Reservation

__all__ = [
    "BILLING_COLUMNS",
    "NOTHING_BILLED",
    "Billing",
    "CacheHit",
    "LedgerWrite",
    "Release",
    "Reserve",
    "Settle",
    "check_write",
]


@dataclass(frozen=True)
class Billing:
    """What a settlement was billed and why: the token split, the unit prices, the source.

    ``input_tokens`` are the prompt tokens neither read from nor written to a cache;
    ``output_tokens`` include ``reasoning_tokens``. The four ``*_cost_per_token`` are the
    USD per token used (a cache part the price lacks is the input price), so
    ``cost_usd`` is their sum of products. ``price_source`` names where the price came
    from (``user_model``, ``user_blended``, ``litellm_map``, ``default``, ``unpriced``);
    ``usage_clamped``: the provider reported counts that could not be true (negative,
    more cached than prompt tokens, above what the request could produce), clamped;
    ``note`` says what was estimated or clamped.
    """

    input_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    input_cost_per_token: float | None = None
    output_cost_per_token: float | None = None
    cache_read_cost_per_token: float | None = None
    cache_write_cost_per_token: float | None = None
    price_source: str | None = None
    usage_clamped: bool = False
    note: str | None = None

    @classmethod
    def counts_only(cls, prompt_tokens: int, completion_tokens: int) -> Billing:
        """A settlement given only its two counts: every prompt token as uncached input."""
        return cls(input_tokens=prompt_tokens, output_tokens=completion_tokens)

    def values(self) -> tuple[Any, ...]:
        """The row's values, in :data:`BILLING_COLUMNS` order."""
        return (
            *self.counts(),
            *self.prices(),
            self.price_source,
            int(self.usage_clamped),
            self.note,
        )

    def counts(self) -> tuple[int, int, int, int, int]:
        """The billed token counts, in :data:`BILLING_COLUMNS` order."""
        return (
            self.input_tokens,
            self.cache_read_tokens,
            self.cache_write_tokens,
            self.output_tokens,
            self.reasoning_tokens,
        )

    def prices(self) -> tuple[float | None, ...]:
        """The four unit prices, in :data:`BILLING_COLUMNS` order."""
        return (
            self.input_cost_per_token,
            self.output_cost_per_token,
            self.cache_read_cost_per_token,
            self.cache_write_cost_per_token,
        )


BILLING_COLUMNS = (
    "input_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "output_tokens",
    "reasoning_tokens",
    "input_cost_per_token",
    "output_cost_per_token",
    "cache_read_cost_per_token",
    "cache_write_cost_per_token",
    "price_source",
    "usage_clamped",
    "charge_note",
)
"""The ledger row's columns that a :class:`Billing` fills (both backends)."""
NOTHING_BILLED = Billing().values()  # a released reservation's


@dataclass(frozen=True)
class Reserve:
    """Check the budgets and hold ``estimated_usd`` in a ``pending`` row (a Reservation)."""

    request_id: str
    provider: str
    model: str
    estimated_usd: float
    budget: Budget
    strategy: str | None = None
    caller: str | None = None


@dataclass(frozen=True)
class Settle:
    """Replace a reservation by what the call cost (0 for a failure); may fire alerts.

    ``estimated``: ``cost_usd`` is the client's estimate, not the provider's usage.
    ``billing``: how ``cost_usd`` was reached (None: the two counts, as uncached input
    and output, unpriced).
    """

    reservation: Reservation
    outcome: str  # "success" or "error"
    cost_usd: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_ms: float = 0.0
    error_class: str | None = None
    model: str | None = None
    estimated: bool = False
    billing: Billing | None = None

    def billed(self) -> Billing:
        """The billing the row records (:meth:`Billing.counts_only` when none was given)."""
        if self.billing is not None:
            return self.billing
        return Billing.counts_only(self.prompt_tokens, self.completion_tokens)


@dataclass(frozen=True)
class Release:
    """Give a reservation back, charging nothing (a no-op once it is settled)."""

    reservation: Reservation
    error_class: str = "Cancelled"


@dataclass(frozen=True)
class CacheHit:
    """Record a request answered from the cache, with the cost it saved."""

    request_id: str
    provider: str
    model: str
    saved_usd: float
    prompt_tokens: int
    completion_tokens: int
    latency_ms: float
    strategy: str | None = None
    caller: str | None = None


LedgerWrite = Reserve | Settle | Release | CacheHit


def check_write(write: object) -> None:
    """Raise TypeError for what is not a ledger write, ValueError for impossible values."""
    if not isinstance(write, LedgerWrite):
        raise TypeError(f"not a ledger write: {write!r}")
    if isinstance(write, Reserve):
        _non_negative(estimated_usd=write.estimated_usd)
    elif isinstance(write, Settle):
        if write.outcome not in ("success", "error"):
            raise ValueError(f"outcome must be 'success' or 'error', not {write.outcome!r}")
        tokens = min(write.prompt_tokens, write.completion_tokens)
        _non_negative(cost_usd=write.cost_usd, tokens=tokens)
        if write.billing is not None:
            _check_billing(write.billing)
    elif isinstance(write, CacheHit):
        _non_negative(saved_usd=write.saved_usd)


def _non_negative(**values: float) -> None:
    for name, value in values.items():
        if not value >= 0:  # NaN too
            raise ValueError(f"{name} must be >= 0, got {value!r}")


def _check_billing(billing: Billing) -> None:
    prices = [price for price in billing.prices() if price is not None]
    _non_negative(billed_tokens=min(billing.counts()), unit_price=min(prices, default=0.0))
