"""A SQLite cost ledger on a fake clock, for the ledger tests: the ``clock`` fixture (noon,
25 November 2026, UTC, moved by hand), the ``ledger`` fixture on it in the test's temp
dir, and the helpers that reserve and spend. Used by tests/test_ledger.py,
test_ledger_arithmetic.py, test_ledger_schema.py and test_ledger_processes.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from leadfactory.llm.ledger import (
    Budget,
    CostLedger,
)

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
