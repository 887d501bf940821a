"""The cost ledger's budgets and alerts, through a SQLite ledger on a fake clock.

Spend at the edge of a day and a month, the daily limit resetting at UTC midnight,
refused requests writing nothing, free requests never refused, reservations holding
budget until settled, failures and stale reservations releasing it, settlements once,
resets freeing headroom and keeping every row, the provider summary, rows by time; alerts
once per period and scope, a raising callback. The arithmetic alone is in
tests/test_ledger_arithmetic.py, the schema in tests/test_ledger_schema.py, files,
threads and processes in tests/test_ledger_processes.py.
"""

from __future__ import annotations

import logging
import sqlite3
from datetime import UTC, datetime, timedelta

import pytest

from leadfactory.llm.exceptions import LLMQuotaExceededError
from leadfactory.llm.ledger import (
    Budget,
    BudgetAlert,
    CostLedger,
)

from .ledger_clock import NOON, reserve, spend_once

# fixtures, imported so that pytest finds them in this module
from .ledger_clock import clock as clock
from .ledger_clock import ledger as ledger

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
