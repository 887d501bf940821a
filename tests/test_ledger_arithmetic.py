"""The cost ledger's arithmetic: timestamps, UTC periods, refusals, alerts due, and the
running totals against a recomputation from the rows.

Pure functions of leadfactory.llm.ledger.budget first (no file): fixed-width UTC
timestamps, day and month bounds, which limit a request would break and by how much,
which alerts are due; then a property: after any sequence of reservations, settlements,
releases and resets, the ledger's spend equals a recomputation from its rows.
"""

from __future__ import annotations

import sqlite3
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leadfactory.llm.exceptions import LLMQuotaExceededError
from leadfactory.llm.ledger import (
    Budget,
    BudgetAlert,
    CostLedger,
    alerts_due,
    budget_refusal,
    period_bounds,
    period_key,
    utc_iso,
)
from leadfactory.llm.ledger.budget import (
    NANOS_PER_USD,
    may_alert,
    settled_and_reserved,
    unsent_alert_possible,
)

from .ledger_clock import NO_LIMITS, NOON, FakeClock, reserve

# fixtures, imported so that pytest finds them in this module
from .ledger_clock import clock as clock
from .ledger_clock import ledger as ledger

# -- pure arithmetic ----------------------------------------------------------------------


def test_timestamps_are_fixed_width_utc():
    assert utc_iso(datetime(2026, 11, 25, 21, 55, 58, 123456, tzinfo=UTC)) == (
        "2026-11-25T21:55:58.123456+00:00"
    )
    assert utc_iso(datetime(2026, 11, 25, tzinfo=UTC)) == "2026-11-25T00:00:00.000000+00:00"
    paris = datetime.fromisoformat("2026-12-01T00:30:00+01:00")
    assert utc_iso(paris) == "2026-11-30T23:30:00.000000+00:00"
    assert period_key(paris, "day") == "2026-11-30" and period_key(paris, "month") == "2026-11"
    with pytest.raises(ValueError, match="timezone-aware"):
        utc_iso(datetime(2026, 11, 25))


@pytest.mark.parametrize(
    ("moment", "period", "start", "end"),
    [
        ("2026-11-25T12:00:00", "day", "2026-11-25", "2026-11-26"),
        ("2026-12-31T23:59:59", "day", "2026-12-31", "2027-01-01"),
        ("2026-12-31T23:59:59", "month", "2026-12-01", "2027-01-01"),
        ("2028-02-29T08:00:00", "month", "2028-02-01", "2028-03-01"),
        ("2026-01-31T00:00:00", "month", "2026-01-01", "2026-02-01"),
    ],
)
def test_period_bounds(moment, period, start, end):
    bounds = period_bounds(datetime.fromisoformat(moment + "+00:00"), period)
    assert [b.date().isoformat() for b in bounds] == [start, end]
    assert all(b.tzinfo is not None and b.utcoffset() == timedelta(0) for b in bounds)


def refusal(budget, estimate, day=0.0, month=0.0):
    spent = (day, month)
    return budget_refusal(budget, provider="openai", estimated_usd=estimate, spent=spent, now=NOON)


def test_refusal_names_the_daily_limit_and_the_overshoot():
    error = refusal(Budget(daily_limit=5.0), 0.04, day=4.99, month=4.99)
    assert isinstance(error, LLMQuotaExceededError) and error.provider == "openai"
    assert str(error) == (
        "daily_cost_limit of $5.0000 would be exceeded by $0.0300 (spent $4.9900, this request"
        " to openai needs up to $0.0400); the budget resets at 2026-11-26T00:00:00.000000+00:00"
    )
    assert error.metadata == {
        "limit": "daily_cost_limit",
        "limit_usd": 5.0,
        "spent_usd": 4.99,
        "estimated_usd": 0.04,
        "over_by_usd": pytest.approx(0.03),
        "provider": "openai",
        "resets_at": "2026-11-26T00:00:00.000000+00:00",
    }


def test_refusal_checks_the_request_cap_then_day_then_month():
    capped = refusal(Budget(max_cost_per_request=0.5), 0.75)
    assert capped.metadata["limit"] == "max_cost_per_request"
    assert capped.metadata["over_by_usd"] == 0.25 and "resets" not in str(capped)
    monthly = refusal(Budget(daily_limit=50, monthly_limit=100), 0.5, day=1, month=99.75)
    assert monthly.metadata["limit"] == "monthly_cost_limit"
    assert "resets at 2026-12-01T00:00:00.000000+00:00" in str(monthly)
    both = refusal(Budget(daily_limit=1, monthly_limit=1), 0.5, day=0.75, month=0.75)
    assert both.metadata["limit"] == "daily_cost_limit"


def test_refusal_boundaries():
    budget = Budget(daily_limit=5.0)
    assert refusal(budget, 0.01, day=4.99) is None  # exactly at the limit is allowed
    assert refusal(budget, 0.0, day=99.0, month=5000) is None  # free is never refused
    assert refusal(Budget(max_cost_per_request=0.0), 0.0) is None
    assert refusal(NO_LIMITS, 1e6, day=1e9, month=1e9) is None
    assert refusal(budget, 0.000002, day=5.0).metadata["over_by_usd"] == pytest.approx(2e-6)
    assert "exceeded by $0.000002 " in str(refusal(budget, 0.000002, day=5.0))


def test_alerts_due_at_the_threshold():
    budget = Budget(daily_limit=10.0, monthly_limit=100.0, alert_threshold=0.8)
    assert alerts_due(budget, spent=(7.99, 7.99), now=NOON) == []
    assert alerts_due(budget, spent=(8.0, 80.0), now=NOON) == [
        BudgetAlert("day", "2026-11-25", "all", 0.8, 10.0, 8.0),
        BudgetAlert("month", "2026-11", "all", 0.8, 100.0, 80.0),
    ]
    off = Budget(daily_limit=10.0, alert_threshold=None)
    assert alerts_due(off, spent=(10, 10), now=NOON) == []


def test_alerts_due_measure_settled_spend_and_report_the_reserved():
    budget = Budget(daily_limit=10.0, monthly_limit=100.0, alert_threshold=0.8)
    due = alerts_due(budget, spent=(8.0, 8.0), reserved=(1.5, 2.5), now=NOON)
    assert due == [BudgetAlert("day", "2026-11-25", "all", 0.8, 10.0, 8.0, reserved_usd=1.5)]
    assert alerts_due(budget, spent=(7.5, 7.5), reserved=(2.5, 2.5), now=NOON) == []


def test_settled_and_reserved_split_the_counted_spend():
    usd = NANOS_PER_USD
    settled, reserved = settled_and_reserved((3 * usd, 5 * usd), (usd, 2 * usd), (usd // 2, usd))
    assert (settled, reserved) == ((2.0, 3.0), (0.5, 1.0))
    assert settled_and_reserved((0, 0), (5, 5), (0, 0))[0] == (0.0, 0.0)  # never negative


def test_the_pending_rows_are_read_only_when_the_running_totals_reach_a_threshold():
    budget = Budget(daily_limit=10.0, monthly_limit=100.0, alert_threshold=0.8)
    usd = NANOS_PER_USD
    assert not unsent_alert_possible(budget, (7 * usd, 7 * usd), now=NOON, sent=())
    assert unsent_alert_possible(budget, (8 * usd, 8 * usd), now=NOON, sent=())
    day_sent = {("day", "2026-11-25")}
    assert not unsent_alert_possible(budget, (8 * usd, 8 * usd), now=NOON, sent=day_sent)
    assert unsent_alert_possible(budget, (8 * usd, 80 * usd), now=NOON, sent=day_sent)


def test_may_alert_until_the_periods_alerts_are_known_sent():
    budget = Budget(daily_limit=10.0, monthly_limit=100.0, alert_threshold=0.8)
    assert may_alert(budget, 0.01, now=NOON)
    assert not may_alert(budget, 0.0, now=NOON)  # a free settlement changes nothing
    assert may_alert(budget, 0.01, now=NOON, sent={("day", "2026-11-25")})  # month still open
    sent = {("day", "2026-11-25"), ("month", "2026-11")}
    assert not may_alert(budget, 0.01, now=NOON, sent=sent)
    assert may_alert(budget, 0.01, now=NOON + timedelta(days=1), sent=sent)  # a new day
    assert not may_alert(Budget(alert_threshold=None), 0.01, now=NOON)


# -- the running totals agree with the rows ----------------------------------------------


def reference_spend(path: Path, now: datetime, stale_after: float) -> tuple[float, float]:
    """Budget spend recomputed from scratch: the definition the totals must match."""
    cutoff = utc_iso(now - timedelta(seconds=stale_after))
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT id, ts, provider, outcome, cost_usd + reserved_usd FROM calls")
        resets = conn.execute("SELECT provider, after_call_id FROM resets").fetchall()
        spent = [0.0, 0.0]
        for row_id, ts, provider, outcome, amount in rows:
            boundary = max([a for p, a in resets if p in (None, provider)], default=0)
            if row_id <= boundary or (outcome == "pending" and ts < cutoff):
                continue
            for index, period in enumerate(("day", "month")):
                spent[index] += amount if ts.startswith(period_key(now, period)) else 0.0
    return spent[0], spent[1]


operations = st.lists(
    st.one_of(
        st.tuples(st.just("reserve"), st.sampled_from(["a", "b"]), st.integers(0, 400)),
        st.tuples(st.just("settle"), st.integers(0, 20), st.integers(0, 400)),
        st.tuples(st.just("fail"), st.integers(0, 20), st.just(0)),
        st.tuples(st.just("reset"), st.sampled_from(["a", "b", None]), st.just(0)),
        st.tuples(st.just("wait"), st.integers(1, 60 * 60 * 30), st.just(0)),
        st.tuples(st.just("edit"), st.integers(0, 20), st.integers(0, 400)),
    ),
    max_size=30,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(operations)
def test_budget_spend_matches_a_recomputation_from_the_rows(ops):
    clock = FakeClock(datetime(2026, 11, 30, 20, 0, tzinfo=UTC))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "l.db"
        ledger = CostLedger(path, clock=clock, stale_after=3600)
        held = []
        for op, arg, cents in ops:
            if op == "reserve":
                held.append(reserve(ledger, cents / 100, NO_LIMITS, provider=arg))
            elif op in ("settle", "fail") and held:
                reservation = held.pop(arg % len(held))
                outcome = "success" if op == "settle" else "error"
                ledger.settle(reservation, outcome=outcome, cost_usd=cents / 1000)
            elif op == "reset":
                ledger.reset(arg)
            elif op == "wait":
                clock.advance(seconds=arg)
            elif op == "edit":  # by hand: another provider, an earlier day, a new amount
                with sqlite3.connect(path) as conn:
                    change = (
                        "provider = CASE provider WHEN 'a' THEN 'b' ELSE 'a' END",
                        "ts = '2026-11-01' || substr(ts, 11)",
                        "cost_usd = cost_usd",
                    )[cents % 3]
                    conn.execute(
                        f"UPDATE calls SET {change}, cost_usd = cost_usd + ? WHERE id = ?",
                        (cents / 1000, arg + 1),
                    )
            day, month = reference_spend(path, clock.now, 3600)
            assert ledger.spend(period="day") == pytest.approx(day, abs=1e-9)
            assert ledger.spend(period="month") == pytest.approx(month, abs=1e-9)
        ledger.close()
