"""The ledger's stand-in when cost tracking is off (``LLM_COST_TRACKING=false``).

Nothing is written and daily/monthly limits cannot be counted, but the
per-request cap still holds, since it needs no history.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from .ledger import Budget, Reservation, budget_refusal

__all__ = ["UntrackedLedger"]


class UntrackedLedger:
    """Same methods as :class:`~leadfactory.llm.ledger.CostLedger`; records nothing."""

    path = None

    def reserve(
        self, *, request_id: str, provider: str, estimated_usd: float, budget: Budget, **_: Any
    ) -> Reservation:
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

    def reset(self, provider: str | None = None) -> None:
        return None

    def provider_summary(self) -> dict[str, dict[str, Any]]:
        return {}

    def close(self) -> None:
        return None
