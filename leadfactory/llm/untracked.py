"""The ledger's stand-in when cost tracking is off (``LLM_COST_TRACKING=false``).

Nothing is written and daily/monthly limits cannot be counted, but the
per-request cap still holds, since it needs no history.
"""

from __future__ import annotations

from typing import Any

from .exceptions import LLMQuotaExceededError
from .ledger import Budget, Reservation

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
        cap = budget.max_cost_per_request
        if estimated_usd > 0 and cap is not None and estimated_usd > cap:
            over = estimated_usd - cap
            raise LLMQuotaExceededError(
                f"{provider}: max_cost_per_request of ${cap:.4f} would be exceeded by "
                f"${over:.4f} (this request needs up to ${estimated_usd:.4f})",
                provider=provider,
                metadata={
                    "limit": "max_cost_per_request",
                    "limit_usd": cap,
                    "spent_usd": 0.0,
                    "estimated_usd": estimated_usd,
                    "over_by_usd": over,
                    "provider": provider,
                },
            )

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
