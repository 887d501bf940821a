"""The ledger contract's backends: the ``backend`` fixture, parametrised over every
implementation of leadfactory.llm.ledger.Ledger (SQLite, PostgreSQL, the untracked
stand-in), and the fixtures and helpers built on it.

Every test of the ledger contract (tests/contract/test_ledger*_contract.py) runs against
each parameter. A new backend is one more parameter here, and done when those suites pass.
``recording`` skips the untracked stand-in, which records nothing by design.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from leadfactory.llm.ledger import (
    Budget,
    CostLedger,
    Ledger,
    UntrackedLedger,
)

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
