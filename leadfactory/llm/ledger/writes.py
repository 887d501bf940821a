"""The ledger's writes as values: one small frozen dataclass per kind of write.

The fallback flow yields them, the drivers hand them to the ledger (or to its writer
thread), and each ledger dispatches on the type (:meth:`Ledger.write`). A write is
checked by :func:`check_write` inside the ledger, so a bad one in a batch fails alone.
"""

from __future__ import annotations

from dataclasses import dataclass

from .budget import Budget, Reservation

__all__ = ["CacheHit", "LedgerWrite", "Release", "Reserve", "Settle", "check_write"]


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
    elif isinstance(write, CacheHit):
        _non_negative(saved_usd=write.saved_usd)


def _non_negative(**values: float) -> None:
    for name, value in values.items():
        if not value >= 0:  # NaN too
            raise ValueError(f"{name} must be >= 0, got {value!r}")
