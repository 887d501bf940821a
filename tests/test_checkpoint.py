"""The ledger's background WAL checkpoints, and which statements its writes run."""

from __future__ import annotations

import itertools
import os
import sqlite3
import time
from datetime import UTC, datetime

import pytest

from leadfactory.llm.ledger import Budget, CostLedger
from leadfactory.llm.sqlitedb import BACKSTOP_PAGES, BackgroundCheckpointer

NOON = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def wait_for(condition, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def reserve_and_settle(ledger: CostLedger, n: int, budget: Budget | None = None) -> None:
    budget = budget or Budget(max_cost_per_request=None, daily_limit=None, monthly_limit=None)
    for i in range(n):
        r = ledger.reserve(
            request_id=f"r{i}", provider="openai", model="m", estimated_usd=0.01, budget=budget
        )
        ledger.settle(r, outcome="success", cost_usd=0.01, prompt_tokens=1, completion_tokens=1)


def test_commits_leave_checkpoints_to_the_background_thread(tmp_path):
    ledger = CostLedger(tmp_path / "l.db", clock=lambda: NOON)
    checkpointer = ledger._file.checkpointer
    checkpointer.every = 10
    conn = ledger._file._connection()
    assert conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == BACKSTOP_PAGES
    reserve_and_settle(ledger, 10)  # 20 commits: two wake-ups
    assert wait_for(lambda: checkpointer.checkpoints >= 1)
    checkpointer.close()  # waits for a checkpoint still running: ours must not find it busy
    # Everything committed is in the main file after a checkpoint of the whole log.
    with sqlite3.connect(tmp_path / "l.db") as reader:
        busy, log_pages, copied = reader.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        assert busy == 0 and copied == log_pages
        assert reader.execute("select count(*) from calls").fetchone()[0] == 10
    ledger.close()
    assert checkpointer._worker is None
    reserve_and_settle(ledger, 5)  # reopened after close: a new thread on demand
    assert wait_for(lambda: checkpointer._worker is not None and checkpointer.checkpoints >= 2)
    ledger.close()


def test_a_forked_child_checkpoints_with_its_own_thread(tmp_path):
    ledger = CostLedger(tmp_path / "l.db", clock=lambda: NOON)
    ledger._file.checkpointer.every = 5
    reserve_and_settle(ledger, 5)
    assert wait_for(lambda: ledger._file.checkpointer.checkpoints >= 1)
    pid = os.fork()
    if pid == 0:  # child: the parent's thread does not exist here
        code = 1
        try:
            before = ledger._file.checkpointer.checkpoints
            reserve_and_settle(ledger, 5)
            code = 0 if wait_for(lambda: ledger._file.checkpointer.checkpoints > before) else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    ledger.close()


def test_checkpointer_rejects_a_zero_interval(tmp_path):
    with pytest.raises(ValueError, match="every"):
        BackgroundCheckpointer(tmp_path / "x.db", every=0)


def test_a_reservation_is_one_statement_and_a_settlement_an_update_then_a_read(tmp_path):
    ledger = CostLedger(tmp_path / "l.db", clock=lambda: NOON)
    budget = Budget(max_cost_per_request=None, daily_limit=1.0, monthly_limit=None)
    reserve_and_settle(ledger, 1, budget)  # the connection is open, the file migrated
    statements: list[str] = []
    ledger._file._guarded.conn.set_trace_callback(statements.append)
    reserve_and_settle(ledger, 3, budget)  # $0.03 of $1: far from 80 %
    # No BEGIN/COMMIT: the reservation's budget check runs inside its INSERT, the UPDATE
    # commits alone, and the settled spend is read after it (no alert row to write).
    # (SQLite traces a statement again as each of its triggers runs: count it once.)
    kinds = [text.split()[0] for text, _ in itertools.groupby(statements)]
    assert kinds == ["INSERT", "UPDATE", "SELECT"] * 3
    assert ledger.alerts() == []


def test_the_settlement_that_crosses_the_threshold_sends_the_alert(tmp_path):
    ledger = CostLedger(tmp_path / "l.db", clock=lambda: NOON)
    budget = Budget(max_cost_per_request=None, daily_limit=0.1, monthly_limit=None)
    reserve_and_settle(ledger, 7, budget)  # $0.07 of $0.10: under 80 %
    assert ledger.alerts() == []
    reserve_and_settle(ledger, 1, budget)  # $0.08: the alert, at once
    assert [a.period for a in ledger.alerts()] == ["day"]


def test_an_idle_checkpoint_thread_ends(tmp_path, monkeypatch):
    import leadfactory.llm.sqlitedb.checkpoint as module

    monkeypatch.setattr(module, "IDLE_SECONDS", 0.05)
    ledger = CostLedger(tmp_path / "l.db", clock=lambda: NOON)
    checkpointer = ledger._file.checkpointer
    checkpointer.every = 2
    reserve_and_settle(ledger, 1)
    assert wait_for(lambda: checkpointer.checkpoints >= 1)
    assert wait_for(lambda: not checkpointer._worker.alive())
    reserve_and_settle(ledger, 1)  # two more commits: a new thread
    assert wait_for(lambda: checkpointer.checkpoints >= 2)
    ledger.close()
