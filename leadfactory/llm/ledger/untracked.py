"""The ledger's stand-in when cost tracking is off (``LLM_COST_TRACKING=false``).

It has :class:`~leadfactory.llm.ledger.CostLedger`'s public methods, so code written
against ``client.ledger`` works either way. Nothing is written: reads answer as an empty
ledger would (no spend, no rows, no alerts), and ``path`` is None. Daily and monthly
limits cannot be counted, but the per-request cap still holds, since it needs no history.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from ..exceptions import LLMQuotaExceededError
from .budget import Budget, BudgetAlert, Period, Reservation, budget_refusal
from .sqlite_ledger import CostLedger

__all__ = ["UntrackedLedger"]


class UntrackedLedger:
    """Same public methods as :class:`~leadfactory.llm.ledger.CostLedger`; records nothing."""

    path = None
    default_path = staticmethod(CostLedger.default_path)

    # -- writes: checked, then forgotten --------------------------------------------------

    def reserve(
        self, *, request_id: str, provider: str, estimated_usd: float, budget: Budget, **_: Any
    ) -> Reservation:
        """Refuse a request over the per-request cap; otherwise a reservation of nothing."""
        self.check(provider=provider, estimated_usd=estimated_usd, budget=budget)
        return Reservation(
            row_id=0, request_id=request_id, provider=provider, estimated_usd=estimated_usd
        )

    def check(self, *, provider: str, estimated_usd: float, budget: Budget) -> None:
        per_request_only = replace(budget, daily_limit=None, monthly_limit=None)
        refusal = budget_refusal(
            per_request_only,
            provider=provider,
            estimated_usd=estimated_usd,
            spent=(0.0, 0.0),
            now=datetime.now(UTC),
        )
        if refusal is not None:
            raise refusal

    def settle(self, reservation: Reservation, **_: Any) -> None:
        return None

    def record_cache_hit(self, **_: Any) -> None:
        return None

    def run_batch(
        self, operations: Sequence[tuple[str, dict[str, Any]]], *, announce: bool = True
    ) -> list[Any]:
        """As :meth:`CostLedger.run_batch`: each result, or the exception it raised, in order
        (no settlement fires an alert here, whatever ``announce`` says)."""
        results: list[Any] = []
        for method, kwargs in operations:
            if method not in ("reserve", "settle", "record_cache_hit"):
                results.append(ValueError(f"not a ledger write: {method!r}"))
                continue
            try:
                results.append(getattr(self, method)(**kwargs))
            except (LLMQuotaExceededError, TypeError, ValueError) as exc:
                results.append(exc)
        return results

    def reset(self, provider: str | None = None) -> None:
        return None

    def announce(self, alert: Any) -> None:
        """Nothing to announce: no spend is counted, so no alert is ever due."""
        return None

    # -- reads: an empty ledger's answers -------------------------------------------------

    def spend(self, *, period: Period = "day", provider: str | None = None) -> float:
        if period not in ("day", "month"):
            raise ValueError(f"period must be 'day' or 'month', not {period!r}")
        return 0.0

    def provider_summary(self) -> dict[str, dict[str, Any]]:
        return {}

    def alerts(self) -> list[BudgetAlert]:
        return []

    def rows(self, *, since: datetime | None = None, limit: int | None = None) -> list[dict]:
        return []

    # -- lifetime -----------------------------------------------------------------------

    def close(self) -> None:
        return None

    def __enter__(self) -> UntrackedLedger:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
