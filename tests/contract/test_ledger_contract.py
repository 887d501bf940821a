"""What every ledger must do (leadfactory.llm.ledger.Ledger, the protocol).

Each test runs against every implementation through the ``backend`` fixture. A new
backend (PostgreSQL, say) is one more fixture parameter, and done when these pass.
Tests of what only a recording ledger can do (spend, rows, daily and monthly limits,
alerts) skip the untracked stand-in, which records nothing by design and answers as an
empty ledger would; those answers are checked here too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from leadfactory.llm.exceptions import LLMQuotaExceededError
from leadfactory.llm.ledger import (
    Billing,
    Budget,
    BudgetAlert,
    CacheHit,
    CostLedger,
    Ledger,
    Release,
    Reservation,
    Reserve,
    Settle,
    UntrackedLedger,
)
from leadfactory.llm.ledger.writes import BILLING_COLUMNS  # the row's billing columns

NOON = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
NO_LIMITS = Budget(max_cost_per_request=None, daily_limit=None, monthly_limit=None)


class Clock:
    def __init__(self) -> None:
        self.now = NOON

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Backend:
    """One implementation: ``open()`` gives a handle on the same ledger each time."""

    name: str
    open: Callable[..., Ledger]
    records: bool  # keeps rows and counts spend (False: the untracked stand-in)
    clock: Clock


@pytest.fixture(params=["sqlite", "postgres", "untracked"])
def backend(request, tmp_path) -> Iterator[Backend]:
    clock, opened = Clock(), []
    if request.param == "postgres":  # a schema of this test's own (or skip: see services.py)
        schema_url = request.getfixturevalue("postgres_url")

    def open_ledger(**options) -> Ledger:
        if request.param == "sqlite":
            ledger: Ledger = CostLedger(tmp_path / "ledger.db", clock=clock, **options)
        elif request.param == "postgres":
            from leadfactory.llm.ledger.postgres import PostgresLedger

            ledger = PostgresLedger(schema_url, clock=clock, **options)
        else:
            ledger = UntrackedLedger()
        opened.append(ledger)
        return ledger

    yield Backend(request.param, open_ledger, request.param != "untracked", clock)
    for ledger in opened:
        ledger.close()


@pytest.fixture
def ledger(backend) -> Ledger:
    return backend.open()


@pytest.fixture
def recording(backend) -> Backend:
    if not backend.records:
        pytest.skip(f"the {backend.name} ledger records nothing")
    return backend


def reserve(ledger: Ledger, usd: float, *, budget: Budget = NO_LIMITS, request_id: str = "r"):
    return ledger.reserve(
        request_id=request_id, provider="openai", model="gpt-4", estimated_usd=usd, budget=budget
    )


def spend_once(ledger: Ledger, usd: float, **options) -> None:
    ledger.settle(reserve(ledger, usd, **options), outcome="success", cost_usd=usd)


# -- every ledger ---------------------------------------------------------------------------


def test_a_reservation_names_its_request_and_holds_the_estimate(ledger):
    reservation = reserve(ledger, 0.25, request_id="req-1")
    assert isinstance(reservation, Reservation)
    assert (reservation.request_id, reservation.provider) == ("req-1", "openai")
    assert reservation.estimated_usd == 0.25
    ledger.settle(reservation, outcome="success", cost_usd=0.2, prompt_tokens=3)


def test_the_per_request_cap_refuses_paid_requests_and_admits_free_ones(ledger):
    cap = Budget(max_cost_per_request=0.1, daily_limit=None, monthly_limit=None)
    with pytest.raises(LLMQuotaExceededError, match="max_cost_per_request") as refused:
        reserve(ledger, 0.5, budget=cap)
    assert refused.value.provider == "openai"
    with pytest.raises(LLMQuotaExceededError, match="max_cost_per_request"):
        ledger.check(provider="openai", estimated_usd=0.5, budget=cap)
    ledger.check(provider="openai", estimated_usd=0.05, budget=cap)  # admitted: no error
    reserve(ledger, 0.0, budget=Budget(max_cost_per_request=0.0))  # free: never refused
    assert ledger.spend() == 0.0


def test_bad_writes_are_refused_with_value_and_type_errors(ledger):
    reservation = reserve(ledger, 0.1)
    with pytest.raises(ValueError, match="outcome"):
        ledger.settle(reservation, outcome="maybe")
    with pytest.raises(ValueError, match="cost_usd"):
        ledger.settle(reservation, outcome="success", cost_usd=-1.0)
    with pytest.raises(ValueError, match="estimated_usd"):
        reserve(ledger, float("nan"))
    with pytest.raises(TypeError, match="not a ledger write"):
        ledger.write("reserve")  # type: ignore[arg-type]
    ledger.settle(reservation, outcome="error", error_class="LLMTimeoutError")  # still pending


def test_a_batch_gives_each_write_its_own_result(ledger):
    first = reserve(ledger, 0.1)
    cap = Budget(max_cost_per_request=0.5, daily_limit=None, monthly_limit=None)
    results = ledger.run_batch(
        [
            Reserve("r2", "openai", "gpt-4", 0.2, NO_LIMITS),
            Reserve("r3", "openai", "gpt-4", 1.0, cap),  # over the cap: refused alone
            Settle(first, outcome="success", cost_usd=0.05),
            Settle(first, outcome="nonsense"),
            CacheHit("r4", "openai", "gpt-4", 0.01, 3, 4, 1.5),
            "not a write",  # type: ignore[list-item]
        ]
    )
    assert isinstance(results[0], Reservation) and results[0].request_id == "r2"
    assert isinstance(results[1], LLMQuotaExceededError)
    assert results[2] is None and results[4] is None
    assert isinstance(results[3], ValueError) and isinstance(results[5], TypeError)
    ledger.release(results[0])


def test_release_gives_back_a_reservation_and_is_a_no_op_once_settled(backend):
    ledger = backend.open()
    released = reserve(ledger, 0.3)
    ledger.release(released)
    ledger.write(Release(released))  # twice: still fine
    settled = reserve(ledger, 0.2)
    ledger.settle(settled, outcome="success", cost_usd=0.2)
    ledger.release(settled)  # the settlement stands
    assert ledger.spend() == pytest.approx(0.2 if backend.records else 0.0)


def test_spend_rejects_an_unknown_period(ledger):
    with pytest.raises(ValueError, match="period"):
        ledger.spend(period="week")  # type: ignore[arg-type]


def test_a_closed_ledger_opens_again_on_use_and_works_as_a_context_manager(backend):
    ledger = backend.open()
    spend_once(ledger, 0.125)
    ledger.close()
    spend_once(ledger, 0.125)
    with ledger as same:
        assert same is ledger
    assert ledger.spend() == (0.25 if backend.records else 0.0)


def test_an_untracked_ledger_answers_as_an_empty_one(backend):
    if backend.records:
        pytest.skip("an empty ledger's answers: the untracked stand-in's contract")
    ledger = backend.open()
    spend_once(ledger, 0.5)
    ledger.reset()
    assert (ledger.spend(), ledger.spend(period="month", provider="openai")) == (0.0, 0.0)
    assert (ledger.rows(), ledger.alerts(), ledger.provider_summary()) == ([], [], {})
    assert ledger.totals(by="model") == []
    assert ledger.path is None


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


# -- what a row was billed, and why --------------------------------------------------------

# o3-mini's map price: 800 uncached + 1200 cached input, 500 output of which 300 reasoning
BILLED = Billing(
    input_tokens=800,
    cache_read_tokens=1200,
    cache_write_tokens=0,
    output_tokens=500,
    reasoning_tokens=300,
    input_cost_per_token=1.1e-6,
    output_cost_per_token=4.4e-6,
    cache_read_cost_per_token=5.5e-7,
    cache_write_cost_per_token=1.1e-6,
    price_source="litellm_map",
)
BILLED_COST = 800 * 1.1e-6 + 1200 * 5.5e-7 + 500 * 4.4e-6  # 0.00374


def billing_of(row: dict) -> tuple:
    return tuple(row[column] for column in BILLING_COLUMNS)


def test_a_settled_row_says_what_was_billed_and_why(recording):
    ledger = recording.open()
    ledger.settle(
        reserve(ledger, 0.01),
        outcome="success",
        cost_usd=BILLED_COST,
        prompt_tokens=2000,
        completion_tokens=500,
        billing=BILLED,
    )
    clamped = Billing(
        input_tokens=0,
        cache_read_tokens=100,
        output_tokens=7,
        input_cost_per_token=1e-6,
        output_cost_per_token=2e-6,
        cache_read_cost_per_token=1e-7,
        cache_write_cost_per_token=3e-6,
        price_source="user_model",
        usage_clamped=True,
        note="cached_tokens=150 > prompt_tokens=100: clamped to 100",
    )
    ledger.run_batch(
        [Settle(reserve(ledger, 0.01), "success", 24e-6, 100, 7, estimated=True, billing=clamped)]
    )
    ledger.settle(reserve(ledger, 0.01), outcome="error", prompt_tokens=30, completion_tokens=4)
    ledger.release(reserve(ledger, 0.01))
    priced, marked, counts_only, released = ledger.rows()
    assert billing_of(priced) == (
        800, 1200, 0, 500, 300, 1.1e-6, 4.4e-6, 5.5e-7, 1.1e-6, "litellm_map", 0, None
    )  # fmt: skip
    assert abs(priced["cost_usd"] - BILLED_COST) <= 1e-12
    assert billing_of(marked) == (
        0, 100, 0, 7, 0, 1e-6, 2e-6, 1e-7, 3e-6, "user_model", 1,
        "cached_tokens=150 > prompt_tokens=100: clamped to 100",
    )  # fmt: skip
    assert marked["estimated"] == 1
    # no billing given: the two counts as uncached input and output, no price recorded
    assert billing_of(counts_only) == (30, 0, 0, 4, 0, None, None, None, None, None, 0, None)
    assert billing_of(released) == (0, 0, 0, 0, 0, None, None, None, None, None, 0, None)


def test_impossible_billing_is_refused(ledger):
    reservation = reserve(ledger, 0.1)
    negative = Billing(input_tokens=-1)
    with pytest.raises(ValueError, match="billed_tokens"):
        ledger.settle(reservation, outcome="success", billing=negative)
    with pytest.raises(ValueError, match="unit_price"):
        ledger.settle(reservation, outcome="success", billing=Billing(output_cost_per_token=-1.0))
    ledger.settle(reservation, outcome="success", billing=BILLED, cost_usd=BILLED_COST)


def test_totals_sum_what_was_billed_per_caller_and_model(recording):
    ledger = recording.open()
    for caller in ("enrich", "enrich", None):
        held = ledger.reserve(
            request_id="r", provider="openai", model="o3-mini", estimated_usd=0.01,
            budget=NO_LIMITS, caller=caller,
        )  # fmt: skip
        ledger.settle(held, outcome="success", cost_usd=BILLED_COST, billing=BILLED)
    ledger.settle(reserve(ledger, 0.01), outcome="success", prompt_tokens=7, completion_tokens=2)
    by_caller = {row["caller"]: row for row in ledger.totals(by="caller")}
    assert set(by_caller) == {"enrich", None}
    enrich = by_caller["enrich"]
    assert (enrich["calls"], enrich["input_tokens"], enrich["cache_read_tokens"]) == (2, 1600, 2400)
    assert (enrich["cache_write_tokens"], enrich["output_tokens"]) == (0, 1000)
    assert enrich["reasoning_tokens"] == 600
    assert enrich["cost_usd"] == pytest.approx(2 * BILLED_COST, abs=1e-6)
    models = {row["model"]: row for row in ledger.totals(by="model")}
    assert models["o3-mini"]["input_tokens"] == 2400  # three rows of 800
    assert (models["gpt-4"]["input_tokens"], models["gpt-4"]["output_tokens"]) == (7, 2)
