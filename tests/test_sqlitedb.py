"""The SQLite layer shared by the ledger and the cache: files, migrations, forks."""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import stat
import threading
import time
from datetime import UTC, datetime

import pytest

from leadfactory.llm.ledger import Budget, CostLedger
from leadfactory.llm.sqlitedb import Migrations, SQLiteFile

NOON = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
NO_LIMITS = Budget(max_cost_per_request=None, daily_limit=None, monthly_limit=None)
needs_fork = pytest.mark.skipif(
    "fork" not in multiprocessing.get_all_start_methods(), reason="no fork start method"
)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def steps() -> Migrations:
    migrations = Migrations("test-set")

    @migrations
    def m001_items(db) -> None:
        db.execute("CREATE TABLE items (x INTEGER)")

    return migrations


def spend_once(ledger: CostLedger, cost: float) -> None:
    reservation = ledger.reserve(
        request_id="r", provider="openai", model="m", estimated_usd=cost, budget=NO_LIMITS
    )
    ledger.settle(reservation, outcome="success", cost_usd=cost)


# -- files ---------------------------------------------------------------------------------


def test_a_new_file_is_private_in_private_directories(tmp_path):
    path = tmp_path / "made" / "for" / "us" / "ledger.db"
    spend_once(ledger := CostLedger(path), 0.5)
    assert mode(path) == 0o600
    assert {mode(p) for p in (path.parent, path.parent.parent, tmp_path / "made")} == {0o700}
    for sibling in ("ledger.db-wal", "ledger.db-shm"):  # SQLite copies the file's mode
        assert mode(path.parent / sibling) == 0o600
    ledger.close()


def test_an_existing_directory_keeps_the_mode_the_user_chose(tmp_path):
    shared = tmp_path / "team"
    shared.mkdir()
    shared.chmod(0o750)
    with CostLedger(shared / "ledger.db") as ledger:
        spend_once(ledger, 0.5)
    assert mode(shared) == 0o750
    assert mode(shared / "ledger.db") == 0o600


def test_an_existing_file_keeps_its_mode(tmp_path):
    path = tmp_path / "ledger.db"
    sqlite3.connect(path).close()
    path.chmod(0o640)
    with CostLedger(path) as ledger:
        spend_once(ledger, 0.5)
    assert mode(path) == 0o640


def test_migrations_run_once_each_in_order(tmp_path):
    migrations = steps()

    @migrations
    def m002_more(db) -> None:
        db.execute("ALTER TABLE items ADD COLUMN y TEXT")

    file = SQLiteFile(tmp_path / "x.db", migrations=migrations)
    file.transaction(lambda conn: conn.execute("INSERT INTO items VALUES (1, 'a')"))
    file.close()
    again = SQLiteFile(tmp_path / "x.db", migrations=migrations)  # nothing left to apply
    assert again.transaction(lambda conn: migrations.pending(conn), write=False) == []
    rows = again.transaction(lambda c: c.execute("SELECT * FROM items").fetchall(), write=False)
    assert [tuple(row) for row in rows] == [(1, "a")]
    again.close()


def test_a_read_only_file_is_never_created(tmp_path):
    file = SQLiteFile(tmp_path / "absent" / "x.db", migrations=steps(), read_only=True)
    file.open()  # reads as an empty file would: the schema, no rows
    rows = file.transaction(lambda c: c.execute("SELECT * FROM items").fetchall(), write=False)
    assert rows == []
    file.close()
    assert not (tmp_path / "absent").exists()


# -- forks -------------------------------------------------------------------------------------


def _write_in_child(ledger: CostLedger, path: str, results) -> None:
    try:
        spend_once(ledger, 0.25)  # the parent's object
        with CostLedger(path, busy_timeout=3) as fresh:  # and a new one
            spend_once(fresh, 0.125)
        results.put("ok")
    except BaseException as exc:
        results.put(repr(exc))


@needs_fork
def test_a_child_forked_during_a_parent_write_can_write(tmp_path):
    path = tmp_path / "ledger.db"
    ledger = CostLedger(path, busy_timeout=3)
    spend_once(ledger, 1.0)
    inside, go_on = threading.Event(), threading.Event()

    def slow_write(conn: sqlite3.Connection) -> None:
        conn.execute(
            "INSERT INTO calls (ts, provider, outcome, cost_usd) VALUES (?, 'x', 'success', 0.5)",
            [NOON.isoformat()],
        )
        inside.set()  # the write lock is held from here to the COMMIT
        go_on.wait(0.5)

    writer = threading.Thread(target=lambda: ledger._file.transaction(slow_write))
    writer.start()
    assert inside.wait(10)
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    children = [
        context.Process(target=_write_in_child, args=(ledger, str(path), results)) for _ in range(2)
    ]
    for child in children:
        child.start()
    go_on.set()
    writer.join()
    outcomes = [results.get(timeout=60) for _ in children]
    for child in children:
        child.join(timeout=60)
        assert child.exitcode == 0
    assert outcomes == ["ok", "ok"]
    spend_once(ledger, 0.0625)  # the parent writes on
    assert len(ledger.rows()) == 1 + 1 + 2 * 2 + 1
    ledger.close()


def _busy_parent_children(ledger: CostLedger, results) -> None:
    try:
        for _ in range(5):
            spend_once(ledger, 0.01)
        results.put("ok")
    except BaseException as exc:
        results.put(repr(exc))


@needs_fork
def test_children_forked_while_threads_write_and_checkpoint_all_write(tmp_path):
    ledger = CostLedger(tmp_path / "ledger.db", busy_timeout=3)
    ledger._file.checkpointer.every = 1  # a checkpoint after every commit
    stop = threading.Event()

    def keep_writing() -> None:
        while not stop.is_set():
            spend_once(ledger, 0.001)

    writers = [threading.Thread(target=keep_writing) for _ in range(2)]
    for writer in writers:
        writer.start()
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    children = []
    try:
        for _ in range(6):
            time.sleep(0.02)  # forks land at different points of the writers' loops
            child = context.Process(target=_busy_parent_children, args=(ledger, results))
            child.start()
            children.append(child)
        outcomes = [results.get(timeout=60) for _ in children]
    finally:
        stop.set()
        for writer in writers:
            writer.join()
    for child in children:
        child.join(timeout=60)
        assert child.exitcode == 0
    assert outcomes == ["ok"] * len(children)
    ledger.close()
