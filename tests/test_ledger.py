"""The cost ledger: budget arithmetic, periods, resets, alerts, schema, concurrency."""

from __future__ import annotations

import logging
import multiprocessing
import sqlite3
import sys
import tempfile
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlite_utils
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leadfactory.llm.exceptions import LLMError, LLMQuotaExceededError
from leadfactory.llm.ledger import (
    Budget,
    BudgetAlert,
    CostLedger,
    LedgerBusyError,
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
from leadfactory.llm.ledger.schema import MIGRATION_SET, MIGRATIONS, migrate, pending

NOON = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
NO_LIMITS = Budget(max_cost_per_request=None, daily_limit=None, monthly_limit=None)


class FakeClock:
    def __init__(self, now: datetime = NOON) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def ledger(tmp_path, clock):
    with CostLedger(tmp_path / "ledger.db", clock=clock) as opened:
        yield opened


def spend_once(ledger, cost, *, provider="openai", budget=NO_LIMITS, estimate=None):
    reservation = ledger.reserve(
        request_id="r",
        provider=provider,
        model="m",
        estimated_usd=cost if estimate is None else estimate,
        budget=budget,
    )
    ledger.settle(reservation, outcome="success", cost_usd=cost)
    return reservation


def reserve(ledger, estimate, budget, provider="openai"):
    return ledger.reserve(
        request_id="r", provider=provider, model="m", estimated_usd=estimate, budget=budget
    )


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


# -- budgets through the ledger -----------------------------------------------------------


def test_spend_on_the_last_minute_of_a_month_stays_in_that_day_and_month(ledger, clock):
    clock.now = datetime(2026, 1, 31, 23, 59, 30, tzinfo=UTC)
    spend_once(ledger, 0.5)
    assert ledger.spend(period="day") == 0.5 and ledger.spend(period="month") == 0.5
    clock.advance(seconds=30)  # 2026-02-01T00:00:00
    assert ledger.spend(period="day") == 0.0 and ledger.spend(period="month") == 0.0
    spend_once(ledger, 0.25)
    clock.advance(days=1)
    assert ledger.spend(period="day") == 0.0 and ledger.spend(period="month") == 0.25
    assert [row["ts"][:10] for row in ledger.rows()] == ["2026-01-31", "2026-02-01"]


def test_the_daily_limit_resets_at_utc_midnight(ledger, clock):
    budget = Budget(daily_limit=1.0, monthly_limit=1.5)
    clock.now = datetime(2026, 11, 25, 23, 59, tzinfo=UTC)
    spend_once(ledger, 1.0, budget=budget)
    with pytest.raises(LLMQuotaExceededError) as refused:
        reserve(ledger, 0.25, budget)
    assert refused.value.metadata["limit"] == "daily_cost_limit"
    clock.advance(minutes=1)
    spend_once(ledger, 0.5, budget=budget)
    with pytest.raises(LLMQuotaExceededError) as refused:
        reserve(ledger, 0.25, budget)
    assert refused.value.metadata | {"over_by_usd": 0} == {
        "limit": "monthly_cost_limit",
        "limit_usd": 1.5,
        "spent_usd": 1.5,
        "estimated_usd": 0.25,
        "over_by_usd": 0,
        "provider": "openai",
        "resets_at": "2026-12-01T00:00:00.000000+00:00",
    }
    assert "monthly_cost_limit of $1.5000 would be exceeded by $0.2500" in str(refused.value)


def test_a_refused_request_writes_nothing(ledger):
    with pytest.raises(LLMQuotaExceededError, match="max_cost_per_request of \\$1.0000"):
        reserve(ledger, 1.5, Budget())
    ledger.check(provider="openai", estimated_usd=1.0, budget=Budget())
    with pytest.raises(LLMQuotaExceededError, match="max_cost_per_request"):
        ledger.check(provider="openai", estimated_usd=1.5, budget=Budget())
    assert ledger.rows() == []


def test_a_free_request_is_never_refused(ledger):
    budget = Budget(max_cost_per_request=0.01, daily_limit=0.1, monthly_limit=0.1)
    spend_once(ledger, 3.0, estimate=0.01, budget=budget)  # the real cost overshot
    with pytest.raises(LLMQuotaExceededError):
        ledger.check(provider="openai", estimated_usd=0.01, budget=budget)
    ledger.check(provider="ollama", estimated_usd=0.0, budget=budget)
    free = reserve(ledger, 0.0, budget, provider="ollama")
    ledger.settle(free, outcome="success", prompt_tokens=10, completion_tokens=5)
    assert ledger.rows()[-1] | {"ts": None} == {
        "id": free.row_id,
        "ts": None,
        "request_id": "r",
        "provider": "ollama",
        "model": "m",
        "strategy": None,
        "outcome": "success",
        "error_class": None,
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "total_tokens": 15,
        "cost_usd": 0.0,
        "reserved_usd": 0.0,
        "saved_usd": 0.0,
        "latency_ms": 0.0,
        "cached": 0,
        "caller": None,
        "estimated": 0,
        # given no billing: the two counts as uncached input and output, unpriced
        "input_tokens": 10,
        "cache_read_tokens": 0,
        "cache_write_tokens": 0,
        "output_tokens": 5,
        "reasoning_tokens": 0,
        "input_cost_per_token": None,
        "output_cost_per_token": None,
        "cache_read_cost_per_token": None,
        "cache_write_cost_per_token": None,
        "price_source": None,
        "usage_clamped": 0,
        "charge_note": None,
    }


def test_a_reservation_holds_budget_until_settled(ledger):
    budget = Budget(daily_limit=1.0)
    held = reserve(ledger, 0.75, budget)
    assert ledger.spend() == 0.75
    with pytest.raises(LLMQuotaExceededError, match="spent \\$0.7500"):
        reserve(ledger, 0.5, budget)
    ledger.settle(held, outcome="success", cost_usd=0.5, prompt_tokens=3, completion_tokens=4)
    assert ledger.spend() == 0.5
    reserve(ledger, 0.5, budget)
    assert ledger.spend() == 1.0


def test_a_failure_settles_to_zero_and_releases_the_reservation(ledger):
    budget = Budget(daily_limit=1.0)
    held = reserve(ledger, 1.0, budget)
    ledger.settle(held, outcome="error", error_class="LLMTimeoutError", latency_ms=30000.0)
    assert ledger.spend() == 0.0
    row = ledger.rows()[0]
    assert (row["outcome"], row["error_class"], row["cost_usd"], row["reserved_usd"]) == (
        "error",
        "LLMTimeoutError",
        0.0,
        0.0,
    )
    reserve(ledger, 1.0, budget)


def test_settle_rejects_a_second_settle_and_unknown_outcomes(ledger):
    held = reserve(ledger, 0.5, Budget())
    with pytest.raises(ValueError, match="outcome"):
        ledger.settle(held, outcome="pending")
    ledger.settle(held, outcome="success", cost_usd=0.25)
    with pytest.raises(ValueError, match="not a pending reservation"):
        ledger.settle(held, outcome="success", cost_usd=0.25)
    with pytest.raises(ValueError, match="estimated_usd"):
        reserve(ledger, -1.0, Budget())
    assert ledger.spend() == 0.25


def test_stale_reservations_stop_holding_budget(tmp_path, clock):
    ledger = CostLedger(tmp_path / "l.db", clock=clock, stale_after=600)
    budget = Budget(daily_limit=1.0)
    abandoned = reserve(ledger, 1.0, budget)  # its worker crashed
    clock.advance(seconds=599)
    with pytest.raises(LLMQuotaExceededError):
        reserve(ledger, 0.5, budget)
    clock.advance(seconds=2)
    assert ledger.spend() == 0.0 and ledger.spend(period="month") == 0.0
    held = reserve(ledger, 0.5, budget)
    assert ledger.spend() == 0.5
    ledger.settle(abandoned, outcome="success", cost_usd=0.25)  # a late settle still counts
    assert ledger.spend() == 0.75
    ledger.settle(held, outcome="success", cost_usd=0.25)
    assert ledger.spend() == 0.5


def test_resets_free_headroom_and_keep_every_row(ledger, clock):
    budget = Budget(daily_limit=1.0)
    spend_once(ledger, 0.5, provider="openai")
    spend_once(ledger, 0.25, provider="anthropic")
    before_reset = reserve(ledger, 0.25, budget, provider="openai")
    assert ledger.spend() == 1.0
    ledger.reset("openai")
    assert ledger.spend() == 0.25
    assert ledger.spend(provider="openai") == 0.0 and ledger.spend(provider="anthropic") == 0.25
    ledger.settle(before_reset, outcome="success", cost_usd=0.25)  # recorded before the reset
    assert ledger.spend() == 0.25
    spend_once(ledger, 0.125, provider="openai")
    assert ledger.spend(provider="openai") == 0.125
    ledger.reset()
    assert ledger.spend() == 0.0 and ledger.spend(period="month") == 0.0
    spend_once(ledger, 0.5, provider="anthropic")
    assert ledger.spend(provider="anthropic") == 0.5 and ledger.spend(provider="openai") == 0
    assert len(ledger.rows()) == 5
    with sqlite3.connect(ledger.path) as conn:
        assert conn.execute("SELECT provider FROM resets ORDER BY id").fetchall() == [
            ("openai",),
            (None,),
        ]
        assert conn.execute("SELECT total(cost_usd) FROM spend_by_day").fetchone() == (1.625,)


def test_provider_summary_counts_today_after_resets(ledger, clock):
    spend_once(ledger, 0.5, provider="openai")
    failed = reserve(ledger, 0.25, Budget(), provider="anthropic")
    ledger.settle(failed, outcome="error", error_class="LLMProviderError")
    ledger.record_cache_hit(
        request_id="r2",
        provider="openai",
        model="m",
        saved_usd=0.5,
        prompt_tokens=10,
        completion_tokens=20,
        latency_ms=0.5,
        caller="tests",
    )
    clock.advance(days=1)
    spend_once(ledger, 0.125, provider="openai")
    assert ledger.provider_summary() == {
        "openai": {
            "daily_cost": 0.125,
            "monthly_cost": 0.625,
            "requests_today": 1,
            "errors_today": 0,
            "cache_hits_today": 0,
        },
        "anthropic": {
            "daily_cost": 0.0,
            "monthly_cost": 0.0,
            "requests_today": 0,
            "errors_today": 0,
            "cache_hits_today": 0,
        },
    }
    clock.advance(days=-1)
    assert ledger.provider_summary()["anthropic"]["errors_today"] == 1
    assert ledger.provider_summary()["openai"]["cache_hits_today"] == 1
    ledger.reset("openai")
    assert ledger.provider_summary().get("openai", {}).get("cache_hits_today", 0) == 0


def test_rows_since_and_limit(ledger, clock):
    for cost in (0.125, 0.25, 0.5):
        spend_once(ledger, cost)
        clock.advance(hours=1)
    assert [row["cost_usd"] for row in ledger.rows(limit=2)] == [0.25, 0.5]
    since = NOON + timedelta(minutes=30)
    assert [row["cost_usd"] for row in ledger.rows(since=since)] == [0.25, 0.5]
    assert [row["cost_usd"] for row in ledger.rows(since=since, limit=1)] == [0.5]


# -- alerts -------------------------------------------------------------------------------


def test_alerts_fire_once_per_period_and_scope(tmp_path, clock):
    received = []
    ledger = CostLedger(tmp_path / "l.db", clock=clock, on_alert=received.append)
    budget = Budget(daily_limit=1.0, monthly_limit=100.0, alert_threshold=0.5)
    spend_once(ledger, 0.25, budget=budget)
    assert received == []
    spend_once(ledger, 0.25, budget=budget)
    spend_once(ledger, 0.25, budget=budget)
    assert received == [BudgetAlert("day", "2026-11-25", "all", 0.5, 1.0, 0.5)]
    other = CostLedger(tmp_path / "l.db", clock=clock, on_alert=received.append)
    spend_once(other, 0.125, budget=budget)  # another process: the row is already there
    clock.advance(days=1)
    spend_once(ledger, 0.5, budget=budget)
    assert received[1:] == [BudgetAlert("day", "2026-11-26", "all", 0.5, 1.0, 0.5)]
    assert ledger.alerts() == received


def test_month_alert_and_a_raising_callback(tmp_path, clock, caplog):
    calls = []
    caplog.set_level(logging.WARNING, logger="leadfactory.llm")

    def broken(alert):
        calls.append(alert)
        raise RuntimeError("pager down")

    ledger = CostLedger(tmp_path / "l.db", clock=clock, on_alert=broken)
    budget = Budget(daily_limit=None, monthly_limit=2.0, alert_threshold=0.8)
    spend_once(ledger, 1.0, budget=budget)
    spend_once(ledger, 0.75, budget=budget)  # 1.75 >= 1.6: the alert fires, the call goes on
    assert calls == [BudgetAlert("month", "2026-11", "all", 0.8, 2.0, 1.75)]
    assert ledger.spend(period="month") == 1.75
    logged = [record.getMessage() for record in caplog.records]
    assert (
        logged[0]
        == "budget alert: month spend $1.7500 reached 80% of the month limit $2.0000 (2026-11)"
    )
    assert "on_alert" in logged[1] and "pager down" in logged[1]


# -- schema -------------------------------------------------------------------------------


def test_a_fresh_file_gets_every_migration_once(tmp_path):
    path = tmp_path / "deep" / "er" / "ledger.db"
    CostLedger(path).close()
    db = sqlite_utils.Database(path)
    applied = list(db["_sqlite_migrations"].rows_where("migration_set = ?", [MIGRATION_SET]))
    assert [row["name"] for row in applied] == [fn.__name__ for fn in MIGRATIONS]
    CostLedger(path).close()
    assert list(db["_sqlite_migrations"].rows) == applied  # nothing applied twice
    assert db.journal_mode == "wal"
    assert {"calls", "resets", "alerts", "spend_totals"} <= set(db.table_names())
    assert {"spend_by_day", "spend_by_month", "spend_by_model"} <= set(db.view_names())
    assert {"ts", "provider", "cost_usd", "reserved_usd", "saved_usd"} <= set(
        db["calls"].columns_dict
    )


def test_an_old_file_is_upgraded_and_its_history_counts(tmp_path, clock):
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    migrate(conn, stop_before=MIGRATIONS[1].__name__)
    old = sqlite_utils.Database(conn)
    old["calls"].insert_all(
        [
            {"ts": utc_iso(NOON), "provider": "openai", "outcome": "success", "cost_usd": 0.5},
            {"ts": utc_iso(NOON), "provider": "ollama", "outcome": "success", "cost_usd": 0.0},
            {"ts": "2026-11-01T00:00:00.000000+00:00", "provider": "openai", "outcome": "success",
             "cost_usd": 0.25},
        ]
    )  # fmt: skip
    assert pending(conn) == [fn.__name__ for fn in MIGRATIONS[1:]]
    conn.close()
    with CostLedger(path, clock=clock) as ledger:
        assert ledger.spend() == 0.5 and ledger.spend(period="month") == 0.75
        spend_once(ledger, 0.125)
        assert ledger.spend() == 0.625
        assert [row["cost_usd"] for row in ledger.rows()] == [0.5, 0.0, 0.25, 0.125]
    with sqlite3.connect(path) as conn:
        assert pending(conn) == []


def test_a_settlement_may_be_marked_estimated(ledger):
    measured = reserve(ledger, 0.25, NO_LIMITS)
    ledger.settle(measured, outcome="success", cost_usd=0.125)
    guessed = reserve(ledger, 0.25, NO_LIMITS)
    ledger.settle(guessed, outcome="error", cost_usd=0.25, estimated=True, error_class="Cancelled")
    ledger.record_cache_hit(
        request_id="r3", provider="openai", model="m", saved_usd=0.5, prompt_tokens=7,
        completion_tokens=9, latency_ms=1.0,
    )  # fmt: skip
    assert [(r["cost_usd"], r["estimated"]) for r in ledger.rows()] == [
        (0.125, 0),
        (0.25, 1),
        (0.0, 0),
    ]
    assert ledger.spend() == 0.375  # an estimate counts against the budgets like any cost


def test_rows_of_a_file_older_than_the_estimated_marker_are_measured(tmp_path, clock):
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    migrate(conn, stop_before="m006_calls_estimated")
    sqlite_utils.Database(conn)["calls"].insert(
        {"ts": utc_iso(NOON), "provider": "openai", "outcome": "success", "cost_usd": 0.5}
    )
    conn.close()
    with CostLedger(path, clock=clock) as ledger:
        spend_once(ledger, 0.125)
        assert [(r["cost_usd"], r["estimated"]) for r in ledger.rows()] == [(0.5, 0), (0.125, 0)]
        assert ledger.spend() == 0.625


def test_views_sum_raw_history(ledger, clock):
    spend_once(ledger, 0.5, provider="openai")
    failed = reserve(ledger, 0.25, Budget(), provider="openai")
    ledger.settle(failed, outcome="error", error_class="LLMTimeoutError")
    ledger.record_cache_hit(
        request_id="r3",
        provider="openai",
        model="m",
        saved_usd=0.5,
        prompt_tokens=7,
        completion_tokens=9,
        latency_ms=1.0,
    )
    ledger.reset()  # views still show history
    clock.advance(days=6)  # 2026-12-01
    spend_once(ledger, 0.25, provider="anthropic")
    db = sqlite_utils.Database(ledger.path)
    assert list(db.query("SELECT * FROM spend_by_day ORDER BY day")) == [
        {
            "day": "2026-11-25",
            "provider": "openai",
            "requests": 2,
            "errors": 1,
            "cache_hits": 1,
            "prompt_tokens": 7,
            "completion_tokens": 9,
            "cost_usd": 0.5,
            "saved_usd": 0.5,
            "input_tokens": 0,
            "cache_read_tokens": 0,
            "cache_write_tokens": 0,
            "output_tokens": 0,
            "reasoning_tokens": 0,
        },
        {
            "day": "2026-12-01",
            "provider": "anthropic",
            "requests": 1,
            "errors": 0,
            "cache_hits": 0,
            "prompt_tokens": 0,
            "completion_tokens": 0,
            "cost_usd": 0.25,
            "saved_usd": 0.0,
            "input_tokens": 0,
            "cache_read_tokens": 0,
            "cache_write_tokens": 0,
            "output_tokens": 0,
            "reasoning_tokens": 0,
        },
    ]
    months = db.query("SELECT month, provider, cost_usd FROM spend_by_month ORDER BY month")
    assert [tuple(row.values()) for row in months] == [
        ("2026-11", "openai", 0.5),
        ("2026-12", "anthropic", 0.25),
    ]
    models = db.query("SELECT day, provider, model, requests FROM spend_by_model ORDER BY day")
    assert [tuple(row.values()) for row in models][0] == ("2026-11-25", "openai", "m", 2)
    callers = db.query("SELECT day, caller, requests FROM spend_by_caller ORDER BY day")
    assert [tuple(row.values()) for row in callers] == [
        ("2026-11-25", None, 2),
        ("2026-12-01", None, 1),
    ]


# -- paths, connections, processes -------------------------------------------------------


def test_default_path(monkeypatch, tmp_path):
    monkeypatch.setenv("LLM_LEDGER_PATH", str(tmp_path / "x" / "custom.db"))
    assert CostLedger.default_path() == tmp_path / "x" / "custom.db"
    monkeypatch.delenv("LLM_LEDGER_PATH")
    monkeypatch.setattr(sys, "platform", "linux")
    assert CostLedger.default_path() == tmp_path / "data" / "leadfactory-llm" / "ledger.db"
    monkeypatch.delenv("XDG_DATA_HOME")
    expected = Path.home() / ".local" / "share" / "leadfactory-llm" / "ledger.db"
    assert CostLedger.default_path() == expected
    monkeypatch.setattr(sys, "platform", "darwin")
    assert CostLedger.default_path() == (
        Path.home() / "Library" / "Application Support" / "leadfactory-llm" / "ledger.db"
    )
    assert not (tmp_path / "x").exists() and not (tmp_path / "data").exists()


def test_a_locked_file_raises_a_clear_error_after_the_busy_timeout(tmp_path, clock):
    path = tmp_path / "l.db"
    ledger = CostLedger(path, clock=clock, busy_timeout=0.2)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    with pytest.raises(LedgerBusyError, match="stayed locked") as busy:
        reserve(ledger, 0.5, Budget())
    assert isinstance(busy.value, LLMError)
    assert isinstance(busy.value.__cause__, sqlite3.OperationalError)
    assert ledger.spend() == 0.0  # readers are not blocked by a writer in WAL mode
    blocker.execute("ROLLBACK")
    reserve(ledger, 0.5, Budget())
    ledger.close()
    assert ledger.spend() == 0.5  # a closed ledger opens again on its next use
    ledger.close()


def test_threads_share_one_ledger(ledger):
    budget = Budget(daily_limit=2.0)
    admitted = []

    def work():
        for _ in range(25):
            try:
                held = reserve(ledger, 0.0625, budget)
            except LLMQuotaExceededError:
                continue
            ledger.settle(held, outcome="success", cost_usd=0.0625)
            admitted.append(held.row_id)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(admitted) == 32 and ledger.spend() == 2.0


LIMIT, ESTIMATE, COST = 2.0, 0.0625, 0.046875  # exact binary fractions: sums are exact


def _worker(path: str, rounds: int, results) -> None:
    """One process: four threads sharing one ledger, each reserving and settling."""
    ledger = CostLedger(path)
    budget = Budget(max_cost_per_request=1.0, daily_limit=LIMIT, monthly_limit=None)
    admitted, problems = [], []

    def loop() -> None:
        for i in range(rounds):
            try:
                held = ledger.reserve(
                    request_id=f"w{i}", provider="openai", model="m", estimated_usd=ESTIMATE,
                    budget=budget,
                )  # fmt: skip
            except LLMQuotaExceededError:
                continue
            except Exception as exc:  # a lock error would land here
                problems.append(repr(exc))
                continue
            try:
                ledger.settle(held, outcome="success", cost_usd=COST)
                admitted.append(held.row_id)
            except Exception as exc:
                problems.append(repr(exc))

    threads = [threading.Thread(target=loop) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ledger.close()
    results.put((admitted, problems))


def test_processes_and_threads_never_overspend(tmp_path):
    path = tmp_path / "shared.db"
    parent = CostLedger(path)  # open before forking: children must not reuse it
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    context = multiprocessing.get_context(method)
    results = context.Queue()
    procs = [context.Process(target=_worker, args=(str(path), 50, results)) for _ in range(4)]
    for proc in procs:
        proc.start()
    outcomes = [results.get(timeout=60) for _ in procs]
    for proc in procs:
        proc.join(timeout=60)
        assert proc.exitcode == 0
    admitted = [row_id for ids, _ in outcomes for row_id in ids]
    assert [problem for _, problems in outcomes for problem in problems] == []
    rows = {row["id"]: row for row in parent.rows()}
    spent = sum(row["cost_usd"] for row in rows.values())
    assert LIMIT - ESTIMATE < spent <= LIMIT  # never over, and no headroom left unused
    assert sorted(admitted) == sorted(rows)  # every admitted reservation, nothing else
    assert all(row["outcome"] == "success" and row["cost_usd"] == COST for row in rows.values())
    assert parent.spend() == spent
    parent.close()


def _use_inherited(ledger: CostLedger, results) -> None:
    spend_once(ledger, 0.25)  # the parent's ledger object, used in a forked child
    results.put(ledger.spend())


def _open_fresh(path: str, barrier, results) -> None:
    barrier.wait()
    with CostLedger(path) as ledger:
        spend_once(ledger, 0.125)
    results.put("ok")


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="no fork")
def test_a_forked_child_opens_its_own_connection(ledger):
    spend_once(ledger, 0.5)
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    child = context.Process(target=_use_inherited, args=(ledger, results))
    child.start()
    assert results.get(timeout=30) == 0.75
    child.join(timeout=30)
    assert child.exitcode == 0
    spend_once(ledger, 0.125)  # the parent's connection is still sound
    assert ledger.spend() == 0.875 and len(ledger.rows()) == 3


def test_processes_opening_a_fresh_file_at_once_migrate_it_once(tmp_path):
    path = tmp_path / "fresh.db"
    context = multiprocessing.get_context()
    barrier, results = context.Barrier(4), context.Queue()
    procs = [
        context.Process(target=_open_fresh, args=(str(path), barrier, results)) for _ in "abcd"
    ]
    for proc in procs:
        proc.start()
    assert [results.get(timeout=60) for _ in procs] == ["ok"] * 4
    for proc in procs:
        proc.join(timeout=60)
    with CostLedger(path) as ledger:
        assert ledger.spend() == 0.5
    names = [row["name"] for row in sqlite_utils.Database(path)["_sqlite_migrations"].rows]
    assert names == [fn.__name__ for fn in MIGRATIONS]


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
