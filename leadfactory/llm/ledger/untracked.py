"""The ledger's stand-in when cost tracking is off (``LLM_COST_TRACKING=false``).

It implements the :class:`~leadfactory.llm.ledger.Ledger` protocol as
:class:`~leadfactory.llm.ledger.CostLedger` does, so code written against
``client.ledger`` works either way. Nothing is written: reads answer as an empty
ledger would (no spend, no rows, no alerts), and ``path`` is None. Daily and monthly
limits cannot be counted, but the per-request cap still holds, since it needs no history.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from ..exceptions import LLMQuotaExceededError
from .budget import Budget, BudgetAlert, Period, Reservation, budget_refusal, period_spend
from .protocol import GROUPINGS, Grouping, Ledger
from .sqlite_ledger import CostLedger
from .writes import LedgerWrite, Reserve, check_write

__all__ = ["UntrackedLedger"]


class UntrackedLedger(Ledger):
    """The :class:`Ledger` protocol, recording nothing (see the module docstring)."""

    path = None
    default_path = staticmethod(CostLedger.default_path)

    # -- writes: checked, then forgotten --------------------------------------------------

    def write(self, write: LedgerWrite) -> Any:
        """Refuse a reservation over the per-request cap; otherwise remember nothing."""
        check_write(write)
        if isinstance(write, Reserve):
            self.check(
                provider=write.provider, estimated_usd=write.estimated_usd, budget=write.budget
            )
            return Reservation(0, write.request_id, write.provider, write.estimated_usd)
        return None

    def run_batch(self, writes: Sequence[LedgerWrite], *, announce: bool = True) -> list[Any]:
        """As :meth:`CostLedger.run_batch`: each result, or the exception it raised, in order
        (no settlement fires an alert here, whatever ``announce`` says)."""
        results: list[Any] = []
        for write in writes:
            try:
                results.append(self.write(write))
            except (LLMQuotaExceededError, TypeError, ValueError) as exc:
                results.append(exc)
        return results

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

    def reset(self, provider: str | None = None) -> None:
        return None

    def announce(self, alert: Any) -> None:
        """Nothing to announce: no spend is counted, so no alert is ever due."""
        return None

    # -- reads: an empty ledger's answers -------------------------------------------------

    def spend(self, *, period: Period = "day", provider: str | None = None) -> float:
        return period_spend(dict, period, provider)  # nothing recorded: 0

    def provider_summary(self) -> dict[str, dict[str, Any]]:
        return {}

    def alerts(self) -> list[BudgetAlert]:
        return []

    def rows(self, *, since: datetime | None = None, limit: int | None = None) -> list[dict]:
        return []

    def totals(self, *, by: Grouping = "day", since: datetime | None = None) -> list[dict]:
        if by not in GROUPINGS:
            raise ValueError(f"by must be one of {', '.join(GROUPINGS)}, not {by!r}")
        return []

    def close(self) -> None:
        return None
