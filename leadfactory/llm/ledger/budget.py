"""Budget arithmetic, with no I/O: limits, periods, refusals and alerts.

Amounts are compared in whole nano-dollars (:func:`nanos`), so a sum of many small
costs meets a limit exactly. Days and months are UTC.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Container, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from ..exceptions import LLMQuotaExceededError

__all__ = [
    "NANOS_PER_USD",
    "Budget",
    "BudgetAlert",
    "Period",
    "Reservation",
    "Spend",
    "alerts_due",
    "budget_refusal",
    "may_alert",
    "nanos",
    "period_bounds",
    "period_key",
    "settled_and_reserved",
    "unsent_alert_possible",
    "summarise_providers",
    "spend_by_provider",
    "usd_text",
    "utc_iso",
]

NANOS_PER_USD = 1_000_000_000
Period = Literal["day", "month"]
Spend = tuple[float, float]  # (day, month) in USD


@dataclass(frozen=True)
class Budget:
    """Spending limits in USD; ``None`` switches a limit (or the alert) off."""

    max_cost_per_request: float | None = 1.0
    daily_limit: float | None = 50.0
    monthly_limit: float | None = 1000.0
    alert_threshold: float | None = 0.8


@dataclass(frozen=True)
class Reservation:
    """A pending ``calls`` row holding ``estimated_usd`` against the budgets."""

    row_id: int
    request_id: str
    provider: str
    estimated_usd: float
    budget: Budget | None = None  # settle() checks this budget's alert threshold
    spent: Spend | None = None  # (day, month) spend of all providers when it was taken


@dataclass(frozen=True)
class BudgetAlert:
    """A period's settled spend reached ``threshold`` of its limit (sent once per period).

    ``spent_usd`` is what settled calls cost (their real cost, or their charged estimate);
    ``reserved_usd`` is what calls still in flight held when the alert was sent, counted
    apart: a reservation is a worst case, not a spend, so it never fires an alert (refusals
    do count it, so that workers together stay under the limit).
    """

    period: Period
    period_key: str
    scope: str
    threshold: float
    limit_usd: float
    spent_usd: float
    reserved_usd: float = 0.0


def utc_iso(moment: datetime) -> str:
    """``2026-11-25T21:55:58.123456+00:00``: fixed width, so text order is time order."""
    return _utc(moment).isoformat(timespec="microseconds")


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError(f"the ledger needs timezone-aware datetimes, got {moment!r}")
    return moment.astimezone(UTC)


def period_key(moment: datetime, period: Period) -> str:
    """``2026-11-25`` (a day) or ``2026-11`` (a month): the UTC period holding ``moment``."""
    utc = _utc(moment)
    return _period_keys(utc.year, utc.month, utc.day)[period != "day"]


def period_bounds(moment: datetime, period: Period) -> tuple[datetime, datetime]:
    """The UTC day or month holding ``moment``, as [start, end)."""
    utc = moment.astimezone(UTC)
    return _period_bounds(utc.year, utc.month, utc.day, period == "day")


# Every ledger write asks for the keys and bounds of the day and month holding now:
# worked out once per UTC day (the formatting and date arithmetic were 4-6 us a call).
@functools.lru_cache(maxsize=16)
def _period_keys(year: int, month: int, day: int) -> tuple[str, str]:
    return f"{year:04d}-{month:02d}-{day:02d}", f"{year:04d}-{month:02d}"


@functools.lru_cache(maxsize=16)
def _period_bounds(year: int, month: int, day: int, daily: bool) -> tuple[datetime, datetime]:
    start = datetime(year, month, day if daily else 1, tzinfo=UTC)
    if daily:
        return start, start + timedelta(days=1)
    return start, (start + timedelta(days=32)).replace(day=1)


def nanos(usd: float) -> int:  # amounts are compared in whole nano-dollars, exactly
    return round(usd * NANOS_PER_USD)


def usd_text(amount: float) -> str:
    return f"${amount:.4f}" if amount == 0 or amount >= 0.0001 else f"${amount:.9f}".rstrip("0")


def budget_refusal(
    budget: Budget, *, provider: str, estimated_usd: float, spent: Spend, now: datetime
) -> LLMQuotaExceededError | None:
    """The error refusing a request that would exceed a limit, or None to admit it."""
    estimate = nanos(estimated_usd)
    if estimate <= 0:  # free providers are never refused
        return None
    checks = (
        ("max_cost_per_request", budget.max_cost_per_request, None, 0.0),
        ("daily_cost_limit", budget.daily_limit, "day", spent[0]),
        ("monthly_cost_limit", budget.monthly_limit, "month", spent[1]),
    )
    for name, limit, period, spent_usd in checks:
        over = None if limit is None else nanos(spent_usd) + estimate - nanos(limit)
        if over is None or over <= 0:
            continue
        over_usd = over / NANOS_PER_USD
        metadata: dict[str, Any] = {"limit": name, "limit_usd": limit, "spent_usd": spent_usd}
        metadata.update(estimated_usd=estimated_usd, over_by_usd=over_usd, provider=provider)
        needs = f"this request to {provider} needs up to {usd_text(estimated_usd)}"
        message = f"{name} of {usd_text(limit)} would be exceeded by {usd_text(over_usd)} ("
        if period is None:
            message += f"{needs})"
        else:
            metadata["resets_at"] = utc_iso(period_bounds(now, period)[1])
            message += f"spent {usd_text(spent_usd)}, {needs}); the budget resets at "
            message += metadata["resets_at"]
        return LLMQuotaExceededError(message, provider=provider, metadata=metadata)
    return None


def may_alert(
    budget: Budget, cost_usd: float, *, now: datetime, sent: Container[tuple[str, str]] = ()
) -> bool:
    """Whether settling ``cost_usd`` may send an alert, so the settled spend must be read.

    True when an alert threshold is set, the cost is positive, and a period with a limit
    has no alert yet as far as ``sent`` (the (period, period key) pairs this process
    knows were sent) tells. The spend a reservation saw cannot decide it: calls reserved
    later may settle first, and the settlement that crosses the threshold must see it.
    """
    if budget.alert_threshold is None or cost_usd <= 0:
        return False
    periods = (("day", budget.daily_limit), ("month", budget.monthly_limit))
    return any(limit and (p, period_key(now, p)) not in sent for p, limit in periods)


def alerts_due(
    budget: Budget, *, spent: Spend, now: datetime, reserved: Spend = (0.0, 0.0)
) -> list[BudgetAlert]:
    """The alerts whose threshold the settled spend ``spent`` has reached (sent already
    or not); ``reserved`` (held by calls in flight) is reported, never counted."""
    due, threshold = [], budget.alert_threshold
    for index, (period, limit) in enumerate(
        (("day", budget.daily_limit), ("month", budget.monthly_limit))
    ):
        if threshold is not None and limit and nanos(spent[index]) >= nanos(threshold * limit):
            alert = (period_key(now, period), "all", threshold, limit, spent[index])
            due.append(BudgetAlert(period, *alert, reserved_usd=reserved[index]))
    return due


def unsent_alert_possible(
    budget: Budget, counted: Sequence[int], *, now: datetime, sent: Container[tuple[str, str]]
) -> bool:
    """Whether the running totals ``counted`` (day, month nano-dollars: every row, pending
    ones at their estimate, so at least the settled spend) reach the threshold of a period
    whose alert is not known sent. If not, no alert is due, and the pending rows (what
    settled spend needs) are not read."""
    upper = (counted[0] / NANOS_PER_USD, counted[1] / NANOS_PER_USD)
    due = alerts_due(budget, spent=upper, now=now)
    return any((alert.period, alert.period_key) not in sent for alert in due)


def settled_and_reserved(
    counted: Sequence[int], pending: Sequence[int], fresh: Sequence[int]
) -> tuple[Spend, Spend]:
    """(settled, reserved) spend of the day and month, in USD, from nano-dollar sums.

    ``counted`` is the running totals (every row, pending ones at their estimate),
    ``pending`` the pending rows' estimates, ``fresh`` those of the pending rows not yet
    stale (the ones that still hold money). Each is (day, month).
    """
    settled = tuple(max(0, c - p) / NANOS_PER_USD for c, p in zip(counted, pending, strict=True))
    reserved = tuple(max(0, f) / NANOS_PER_USD for f in fresh)
    return (settled[0], settled[1]), (reserved[0], reserved[1])


def spend_by_provider(rows: Iterable[Sequence[Any]]) -> dict[str | None, Spend]:
    """(day, month) USD per provider from ``(provider, day nanos, month nanos)`` rows;
    the key None holds the total."""
    rows = list(rows)
    totals = (None, sum(row[1] for row in rows), sum(row[2] for row in rows))
    return {
        provider: (day / NANOS_PER_USD, month / NANOS_PER_USD)
        for provider, day, month in [*rows, totals]
    }


def period_spend(
    read: Callable[[], dict[str | None, Spend]], period: Period, provider: str | None
) -> float:
    """``provider``'s (None: everyone's) spend in ``period`` from ``read()``, a table as
    :func:`spend_by_provider` makes; a period other than ``"day"`` or ``"month"`` is a
    ValueError before anything is read."""
    if period not in ("day", "month"):
        raise ValueError(f"period must be 'day' or 'month', not {period!r}")
    return read().get(provider, (0.0, 0.0))[period == "month"]


def summarise_providers(
    spent: dict[str | None, Spend], today: dict[str, Sequence[int]]
) -> dict[str, dict[str, Any]]:
    """What ``provider_summary()`` answers: per provider with spend counted this month,
    its costs and today's (requests, errors, cache hits)."""
    summary = {}
    for provider, (day, month) in spent.items():
        if provider is not None:
            requests, errors, hits = today.get(provider, (0, 0, 0))
            summary[provider] = {"daily_cost": day, "monthly_cost": month}
            summary[provider].update(
                requests_today=requests, errors_today=errors, cache_hits_today=hits
            )
    return summary
