"""What the client, the flow and the CLI need of a ledger: the seam a new backend fills.

A backend subclasses :class:`Ledger` and implements :meth:`~Ledger.write` (dispatching
on the type of a :mod:`.writes` value), :meth:`~Ledger.run_batch` and the reads; the
keyword-argument writes (``reserve``, ``settle``, ``release``, ``record_cache_hit``)
come with the protocol. The ledger contract suites (``tests/contract/test_ledger*_contract.py``)
are what a backend must pass: add it to their ``backend`` fixture, in
``tests/contract/ledger_backends.py``. Implementations: :class:`CostLedger` (one SQLite
file) and :class:`UntrackedLedger` (cost tracking off: records nothing).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, Protocol, get_args, runtime_checkable

from .budget import Budget, BudgetAlert, Period, Reservation
from .writes import Billing, CacheHit, LedgerWrite, Release, Reserve, Settle

__all__ = ["GROUPINGS", "Grouping", "Ledger", "PendingReservation", "StartsReservations"]

Grouping = Literal["day", "month", "provider", "model", "caller"]  # how totals() groups rows
GROUPINGS: tuple[str, ...] = get_args(Grouping)


class Ledger(Protocol):
    """A cost ledger: budgeted reservations around provider calls, and what they cost."""

    path: Path | None  # where it lives; None when nothing is stored
    # The client queues its settlements, releases and cache-hit rows on the ledger's
    # writer thread instead of waiting for them (see leadfactory.llm.ledger.writer).
    settles_in_background: bool = False

    # -- writes ----------------------------------------------------------------------------

    def write(self, write: LedgerWrite) -> Any:
        """Do one write: a :class:`Reservation` for :class:`Reserve`, else None.

        Raises LLMQuotaExceededError (writing nothing) for a reservation over a limit,
        ValueError for a settlement of a row that is not pending, TypeError/ValueError
        for a bad write.
        """
        ...

    def run_batch(self, writes: Sequence[LedgerWrite], *, announce: bool = True) -> list[Any]:
        """Several writes in one transaction; each result or exception at its index.

        With ``announce=False`` a settlement's result is the list of alerts it fired,
        for the caller to :meth:`announce` (the async client: on its event loop).
        """
        ...

    def reserve(
        self,
        *,
        request_id: str,
        provider: str,
        model: str,
        estimated_usd: float,
        budget: Budget,
        strategy: str | None = None,
        caller: str | None = None,
    ) -> Reservation:
        """Check the budgets and hold ``estimated_usd`` (see :class:`Reserve`)."""
        write = Reserve(request_id, provider, model, estimated_usd, budget, strategy, caller)
        return self.write(write)

    def settle(
        self,
        reservation: Reservation,
        *,
        outcome: str,
        cost_usd: float = 0.0,
        prompt_tokens: int = 0,
        completion_tokens: int = 0,
        latency_ms: float = 0.0,
        error_class: str | None = None,
        model: str | None = None,
        estimated: bool = False,
        billing: Billing | None = None,
    ) -> None:
        """Replace the reservation by the real cost; send due alerts (see :class:`Settle`)."""
        self.write(
            Settle(
                reservation,
                outcome=outcome,
                cost_usd=cost_usd,
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                latency_ms=latency_ms,
                error_class=error_class,
                model=model,
                estimated=estimated,
                billing=billing,
            )
        )

    def release(self, reservation: Reservation, *, error_class: str = "Cancelled") -> None:
        """Give a reservation back, charging nothing; a no-op once it is settled."""
        self.write(Release(reservation, error_class))

    def record_cache_hit(
        self,
        *,
        request_id: str,
        provider: str,
        model: str,
        saved_usd: float,
        prompt_tokens: int,
        completion_tokens: int,
        latency_ms: float,
        strategy: str | None = None,
        caller: str | None = None,
    ) -> None:
        """Record a request answered from the cache (see :class:`CacheHit`)."""
        self.write(
            CacheHit(
                request_id=request_id,
                provider=provider,
                model=model,
                saved_usd=saved_usd,
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                latency_ms=latency_ms,
                strategy=strategy,
                caller=caller,
            )
        )

    def reset(self, provider: str | None = None) -> None:
        """Write a reset mark: budgets count only later rows (of ``provider``, or of all)."""
        ...

    def announce(self, alert: BudgetAlert) -> None:
        """Log ``alert`` and pass it to the ``on_alert`` callback."""
        ...

    # -- reads -----------------------------------------------------------------------------

    def check(self, *, provider: str, estimated_usd: float, budget: Budget) -> None:
        """Raise as a reservation would, writing nothing."""
        ...

    def spend(self, *, period: Period = "day", provider: str | None = None) -> float:
        """Spend in the current UTC day or month as the budgets count it."""
        ...

    def provider_summary(self) -> dict[str, dict[str, Any]]:
        """Per provider: budget-counted costs and today's counts."""
        ...

    def alerts(self) -> list[BudgetAlert]:
        """Every alert sent, oldest first."""
        ...

    def rows(self, *, since: datetime | None = None, limit: int | None = None) -> list[dict]:
        """Ledger rows from ``since`` on, oldest first; with ``limit``, the newest ones."""
        ...

    def totals(self, *, by: Grouping = "day", since: datetime | None = None) -> list[dict]:
        """Settled rows from ``since`` on, summed per ``by`` (``leadfactory-llm costs``):
        the grouping's columns, then calls, errors, cache_hits, prompt_tokens,
        completion_tokens, cost_usd, saved_usd, estimated (rows charged an estimate),
        and the billed split: input_tokens (uncached), cache_read_tokens,
        cache_write_tokens, output_tokens and reasoning_tokens (of the output)."""
        ...

    # -- lifetime --------------------------------------------------------------------------

    def close(self) -> None:
        """Let go of connections and threads; a later call opens them again."""
        ...

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class PendingReservation(Protocol):
    """A reservation sent and not read yet (see :class:`StartsReservations`)."""

    def result(self) -> Reservation:
        """The reservation, or what :meth:`Ledger.write` raises for it; must be called
        (it frees what the reservation holds), once or more."""
        ...


@runtime_checkable
class StartsReservations(Protocol):
    """A ledger that can send a reservation now and read its answer later (PostgreSQL):
    the sync client builds the request meanwhile (:mod:`leadfactory.llm.deferred`)."""

    def start_reservation(self, write: Reserve) -> PendingReservation | None:
        """``write`` sent; None when it cannot be now (then :meth:`Ledger.write` it)."""
        ...
