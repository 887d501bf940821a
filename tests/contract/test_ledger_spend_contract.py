"""What every ledger that records must do: spend, rows, limits, resets, alerts, totals.

Part of the ledger contract: each test runs against every implementation through the
``backend`` fixture (tests/contract/ledger_backends.py); those that need rows or spend
take ``recording``, which skips the untracked stand-in: it records nothing by design
(tests/contract/test_ledger_contract.py checks that it answers as an empty ledger).
Settled costs and pending estimates, the daily limit across handles, reset marks, time
filters, cache hits, alerts once per period, stale reservations, the provider summary
and totals per grouping.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from leadfactory.llm.exceptions import LLMQuotaExceededError
from leadfactory.llm.ledger import (
    Budget,
    BudgetAlert,
)

from .ledger_backends import NOON, reserve, spend_once

# fixtures, imported so that pytest finds them in this module
from .ledger_backends import backend as backend
from .ledger_backends import ledger as ledger
from .ledger_backends import recording as recording

# -- ledgers that record ---------------------------------------------------------------------


def test_spend_counts_settled_costs_and_pending_estimates(recording):
    ledger = recording.open()
    spend_once(ledger, 0.25)
    pending = reserve(ledger, 0.5)
    assert ledger.spend() == 0.75 and ledger.spend(period="month") == 0.75
    ledger.settle(pending, outcome="error", error_class="LLMProviderError")
    assert ledger.spend() == 0.25 and ledger.spend(provider="openai") == 0.25
    assert ledger.spend(provider="anthropic") == 0.0


def test_a_settlement_replaces_its_estimate_once(recording):
    ledger = recording.open()
    reservation = reserve(ledger, 0.5)
    ledger.settle(reservation, outcome="success", cost_usd=0.1, estimated=True)
    with pytest.raises(ValueError, match="not a pending reservation"):
        ledger.settle(reservation, outcome="success", cost_usd=0.1)
    (row,) = ledger.rows()
    assert (row["outcome"], row["cost_usd"], row["reserved_usd"]) == ("success", 0.1, 0.0)
    assert row["estimated"] == 1


def test_the_daily_limit_holds_across_handles(recording):
    daily = Budget(max_cost_per_request=None, daily_limit=1.0, monthly_limit=None)
    first, second = recording.open(), recording.open()
    spend_once(first, 0.75, budget=daily)
    with pytest.raises(LLMQuotaExceededError, match="daily_cost_limit") as refused:
        reserve(second, 0.5, budget=daily)
    assert refused.value.metadata["resets_at"].startswith("2026-11-26T00:00:00")
    recording.clock.now = NOON + timedelta(days=1)  # a new UTC day
    spend_once(second, 0.5, budget=daily)
    assert [row["cost_usd"] for row in first.rows()] == [0.75, 0.5]


def test_a_reset_mark_restarts_the_budgets_and_keeps_the_history(recording):
    ledger = recording.open()
    spend_once(ledger, 0.5)
    ledger.reset()
    assert ledger.spend() == 0.0 and len(ledger.rows()) == 1
    spend_once(ledger, 0.25)
    assert ledger.spend() == 0.25


def test_rows_filter_by_time_and_keep_the_newest(recording):
    ledger = recording.open()
    for hour in range(3):
        recording.clock.now = NOON + timedelta(hours=hour)
        spend_once(ledger, 0.01 * (hour + 1))
    assert [row["cost_usd"] for row in ledger.rows(limit=2)] == [0.02, 0.03]
    since = NOON + timedelta(minutes=30)
    assert [row["cost_usd"] for row in ledger.rows(since=since)] == [0.02, 0.03]


def test_cache_hits_are_rows_that_cost_nothing(recording):
    ledger = recording.open()
    ledger.record_cache_hit(
        request_id="c1",
        provider="openai",
        model="gpt-4",
        saved_usd=0.02,
        prompt_tokens=5,
        completion_tokens=7,
        latency_ms=0.5,
    )
    (row,) = ledger.rows()
    assert (row["outcome"], row["cost_usd"], row["saved_usd"], row["cached"]) == (
        "cache_hit",
        0.0,
        0.02,
        1,
    )
    assert ledger.provider_summary()["openai"]["cache_hits_today"] == 1
    assert ledger.spend() == 0.0


def test_an_alert_fires_once_per_period_and_reaches_the_callback(recording):
    heard: list[BudgetAlert] = []
    ledger = recording.open(on_alert=heard.append)
    daily = Budget(max_cost_per_request=None, daily_limit=1.0, monthly_limit=None)
    spend_once(ledger, 0.5, budget=daily)
    assert heard == []
    spend_once(ledger, 0.3, budget=daily)  # 80 % of the day
    spend_once(ledger, 0.1, budget=daily)
    assert [(a.period, a.period_key, a.limit_usd) for a in heard] == [("day", "2026-11-25", 1.0)]
    assert ledger.alerts() == heard


def test_an_alert_measures_settled_spend_and_reports_what_is_reserved(recording):
    heard: list[BudgetAlert] = []
    ledger = recording.open(on_alert=heard.append)
    daily = Budget(max_cost_per_request=None, daily_limit=1.0, alert_threshold=0.5)
    held = [reserve(ledger, 0.25, budget=daily, request_id=f"r{n}") for n in range(3)]
    spend_once(ledger, 0.125, budget=daily)  # 0.875 counted, but 0.125 spent: no alert
    ledger.settle(held[2], outcome="success", cost_usd=0.25)  # reserved last, settled first
    assert heard == []  # 0.375 spent
    with pytest.raises(LLMQuotaExceededError):  # refusals count what is reserved
        reserve(ledger, 0.25, budget=daily)  # 0.375 + 0.5 reserved + 0.25 > 1.0
    ledger.settle(held[1], outcome="success", cost_usd=0.125)  # 0.5 spent: the threshold
    assert [(a.period, a.spent_usd, a.reserved_usd) for a in heard] == [("day", 0.5, 0.25)]
    ledger.settle(held[0], outcome="success", cost_usd=0.25)
    assert len(heard) == 1 and ledger.alerts() == heard
    assert ledger.spend() == 0.75


def test_a_stale_reservation_is_neither_spent_nor_reserved_for_alerts(recording):
    heard: list[BudgetAlert] = []
    ledger = recording.open(on_alert=heard.append, stale_after=60)
    daily = Budget(max_cost_per_request=None, daily_limit=1.0, alert_threshold=0.5)
    reserve(ledger, 0.5, budget=daily, request_id="dead-worker")  # never settled
    recording.clock.now += timedelta(minutes=5)
    late = reserve(ledger, 0.25, budget=daily, request_id="alive")
    spend_once(ledger, 0.5, budget=daily)
    assert [(a.spent_usd, a.reserved_usd) for a in heard] == [(0.5, 0.25)]
    ledger.settle(late, outcome="success", cost_usd=0.0)


def test_the_provider_summary_counts_today_per_provider(recording):
    ledger = recording.open()
    spend_once(ledger, 0.5)
    failed = reserve(ledger, 0.25)
    ledger.settle(failed, outcome="error", error_class="LLMTimeoutError")
    summary = ledger.provider_summary()
    assert set(summary) == {"openai"}
    assert summary["openai"]["daily_cost"] == 0.5 and summary["openai"]["monthly_cost"] == 0.5
    assert (summary["openai"]["requests_today"], summary["openai"]["errors_today"]) == (2, 1)


def test_totals_sum_the_settled_rows_per_grouping(recording):
    ledger = recording.open()
    spend_once(ledger, 0.25)
    spend_once(ledger, 0.5)
    reserve(ledger, 1.0)  # pending: not in the totals
    (row,) = ledger.totals(by="provider")
    assert (row["provider"], row["calls"], row["cost_usd"], row["estimated"]) == (
        "openai",
        2,
        0.75,
        0,
    )
    assert [r["day"] for r in ledger.totals()] == ["2026-11-25"]
    assert ledger.totals(since=NOON + timedelta(hours=1)) == []


def test_totals_reject_an_unknown_grouping(ledger):
    with pytest.raises(ValueError, match="by must be one of"):
        ledger.totals(by="week")  # type: ignore[arg-type]
