"""What every ledger must do (leadfactory.llm.ledger.Ledger, the protocol).

Each test runs against every implementation through the ``backend`` fixture
(tests/contract/ledger_backends.py). A new backend (PostgreSQL, say) is one more fixture
parameter, and done when this suite and the other ledger contract suites pass:
tests/contract/test_ledger_spend_contract.py (what only a recording ledger can do: spend,
rows, daily limits, resets, alerts, totals) and tests/contract/test_ledger_billing_contract.py
(what a row was billed, and why). Here: reservations, the per-request cap, bad writes,
batches, releases, reopening, and the untracked stand-in answering as an empty ledger.
"""

from __future__ import annotations

import pytest

from leadfactory.llm.exceptions import LLMQuotaExceededError
from leadfactory.llm.ledger import (
    Budget,
    CacheHit,
    Release,
    Reservation,
    Reserve,
    Settle,
)

from .ledger_backends import NO_LIMITS, reserve, spend_once

# fixtures, imported so that pytest finds them in this module
from .ledger_backends import backend as backend
from .ledger_backends import ledger as ledger

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
