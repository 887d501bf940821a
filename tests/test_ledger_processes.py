"""The cost ledger's file shared by threads and processes: paths, locks, forks.

The default path; a locked file raising a clear error after the busy timeout; threads
sharing one ledger; 4 processes x 4 threads never overspending the daily limit; a
forked child opening its own connection; processes opening a fresh file at once
migrating it once.
"""

from __future__ import annotations

import multiprocessing
import sqlite3
import sys
import threading
from pathlib import Path

import pytest
import sqlite_utils

from leadfactory.llm.exceptions import LLMError, LLMQuotaExceededError
from leadfactory.llm.ledger import (
    Budget,
    CostLedger,
    LedgerBusyError,
)
from leadfactory.llm.ledger.schema import MIGRATIONS

# fixtures, imported so that pytest finds them in this module
from .ledger_clock import clock as clock
from .ledger_clock import ledger as ledger
from .ledger_clock import reserve, spend_once

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
