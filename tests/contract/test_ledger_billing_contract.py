"""What a recorded row was billed, and why: the ledger contract's billing columns.

Part of the ledger contract: each test runs against every implementation through the
``backend`` fixture (tests/contract/ledger_backends.py); those that read rows take
``recording``, which skips the untracked stand-in. A settled row keeps the tokens,
prices and reasons it was billed with; impossible billing is refused; totals sum what was
billed per caller and model.
"""

from __future__ import annotations

import pytest

from leadfactory.llm.ledger import (
    Billing,
    Settle,
)
from leadfactory.llm.ledger.writes import BILLING_COLUMNS  # the row's billing columns

from .ledger_backends import NO_LIMITS, reserve

# fixtures, imported so that pytest finds them in this module
from .ledger_backends import backend as backend
from .ledger_backends import ledger as ledger
from .ledger_backends import recording as recording

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
