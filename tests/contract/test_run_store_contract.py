"""What every batch run store must do (leadfactory.llm.ledger.run_store.RunStore).

Each test runs against the store beside each recording ledger: the SQLite ledger file
and the PostgreSQL ledger's schema (a schema of the test's own, or skip: services.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from leadfactory.llm.exceptions import LLMValidationError
from leadfactory.llm.ledger import CostLedger, Ledger, UntrackedLedger
from leadfactory.llm.ledger.run_store import RunStore, run_store_for

ANSWER = {"choices": [{"message": {"role": "assistant", "content": "Paris"}}], "cost": 0.25}


@pytest.fixture(params=["sqlite", "postgres"])
def open_store(request, tmp_path) -> Iterator[Callable[[], RunStore]]:
    """Opens a new ledger on the same file or schema each call, and its run store."""
    opened: list[Ledger] = []
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_url")

    def open_one() -> RunStore:
        if request.param == "sqlite":
            ledger: Ledger = CostLedger(tmp_path / "ledger.db")
        else:
            from leadfactory.llm.ledger.postgres import PostgresLedger

            ledger = PostgresLedger(url)
        opened.append(ledger)
        return run_store_for(ledger)

    yield open_one
    for ledger in opened:
        ledger.close()


def test_a_new_run_has_no_answers(open_store):
    assert open_store().answers("leads") == {}


def test_recorded_answers_come_back_from_another_connection(open_store):
    open_store().record("leads", [("a", ANSWER), ("b", {**ANSWER, "cost": 0.0})])
    assert open_store().answers("leads") == {"a": ANSWER, "b": {**ANSWER, "cost": 0.0}}


def test_runs_are_kept_apart(open_store):
    store = open_store()
    store.record("one", [("a", ANSWER)])
    store.record("two", [("b", ANSWER)])
    assert set(store.answers("one")) == {"a"}
    assert set(store.answers("two")) == {"b"}


def test_recording_an_item_again_replaces_its_answer(open_store):
    store = open_store()
    store.record("leads", [("a", ANSWER)])
    store.record("leads", [("a", {**ANSWER, "cost": 1.5})])
    assert store.answers("leads") == {"a": {**ANSWER, "cost": 1.5}}


def test_nothing_to_record_writes_nothing(open_store):
    store = open_store()
    store.record("leads", [])
    assert store.answers("leads") == {}


def test_forget_deletes_one_run_only(open_store):
    store = open_store()
    store.record("one", [("a", ANSWER), ("b", ANSWER)])
    store.record("two", [("c", ANSWER)])
    assert store.forget("one") == 2
    assert store.answers("one") == {}
    assert set(store.answers("two")) == {"c"}


def test_a_ledger_that_records_nothing_has_no_run_store():
    with pytest.raises(LLMValidationError, match="LLM_COST_TRACKING"):
        run_store_for(UntrackedLedger())
