"""The cost ledger's schema: migrations applied once, old files upgraded, and the views.

A fresh file gets every migration once; an old file is upgraded and its history counts;
a settlement may be marked estimated, and rows of a file older than that marker are
measured; the views sum the raw history.
"""

from __future__ import annotations

import sqlite3

import sqlite_utils

from leadfactory.llm.ledger import (
    Budget,
    CostLedger,
    utc_iso,
)
from leadfactory.llm.ledger.schema import MIGRATION_SET, MIGRATIONS, migrate, pending

from .ledger_clock import NO_LIMITS, NOON, reserve, spend_once

# fixtures, imported so that pytest finds them in this module
from .ledger_clock import clock as clock
from .ledger_clock import ledger as ledger

# -- schema -------------------------------------------------------------------------------


def test_a_fresh_file_gets_every_migration_once(tmp_path):
    path = tmp_path / "deep" / "er" / "ledger.db"
    CostLedger(path).close()
    db = sqlite_utils.Database(path)
    applied = list(db["_sqlite_migrations"].rows_where("migration_set = ?", [MIGRATION_SET]))
    assert [row["name"] for row in applied] == [fn.__name__ for fn in MIGRATIONS]
    CostLedger(path).close()
    assert list(db["_sqlite_migrations"].rows) == applied  # nothing applied twice
    assert db.journal_mode == "wal"
    assert {"calls", "resets", "alerts", "spend_totals"} <= set(db.table_names())
    assert {"spend_by_day", "spend_by_month", "spend_by_model"} <= set(db.view_names())
    assert {"ts", "provider", "cost_usd", "reserved_usd", "saved_usd"} <= set(
        db["calls"].columns_dict
    )


def test_an_old_file_is_upgraded_and_its_history_counts(tmp_path, clock):
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    migrate(conn, stop_before=MIGRATIONS[1].__name__)
    old = sqlite_utils.Database(conn)
    old["calls"].insert_all(
        [
            {"ts": utc_iso(NOON), "provider": "openai", "outcome": "success", "cost_usd": 0.5},
            {"ts": utc_iso(NOON), "provider": "ollama", "outcome": "success", "cost_usd": 0.0},
            {"ts": "2026-11-01T00:00:00.000000+00:00", "provider": "openai", "outcome": "success",
             "cost_usd": 0.25},
        ]
    )  # fmt: skip
    assert pending(conn) == [fn.__name__ for fn in MIGRATIONS[1:]]
    conn.close()
    with CostLedger(path, clock=clock) as ledger:
        assert ledger.spend() == 0.5 and ledger.spend(period="month") == 0.75
        spend_once(ledger, 0.125)
        assert ledger.spend() == 0.625
        assert [row["cost_usd"] for row in ledger.rows()] == [0.5, 0.0, 0.25, 0.125]
    with sqlite3.connect(path) as conn:
        assert pending(conn) == []


def test_a_settlement_may_be_marked_estimated(ledger):
    measured = reserve(ledger, 0.25, NO_LIMITS)
    ledger.settle(measured, outcome="success", cost_usd=0.125)
    guessed = reserve(ledger, 0.25, NO_LIMITS)
    ledger.settle(guessed, outcome="error", cost_usd=0.25, estimated=True, error_class="Cancelled")
    ledger.record_cache_hit(
        request_id="r3", provider="openai", model="m", saved_usd=0.5, prompt_tokens=7,
        completion_tokens=9, latency_ms=1.0,
    )  # fmt: skip
    assert [(r["cost_usd"], r["estimated"]) for r in ledger.rows()] == [
        (0.125, 0),
        (0.25, 1),
        (0.0, 0),
    ]
    assert ledger.spend() == 0.375  # an estimate counts against the budgets like any cost


def test_rows_of_a_file_older_than_the_estimated_marker_are_measured(tmp_path, clock):
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    migrate(conn, stop_before="m006_calls_estimated")
    sqlite_utils.Database(conn)["calls"].insert(
        {"ts": utc_iso(NOON), "provider": "openai", "outcome": "success", "cost_usd": 0.5}
    )
    conn.close()
    with CostLedger(path, clock=clock) as ledger:
        spend_once(ledger, 0.125)
        assert [(r["cost_usd"], r["estimated"]) for r in ledger.rows()] == [(0.5, 0), (0.125, 0)]
        assert ledger.spend() == 0.625


def test_views_sum_raw_history(ledger, clock):
    spend_once(ledger, 0.5, provider="openai")
    failed = reserve(ledger, 0.25, Budget(), provider="openai")
    ledger.settle(failed, outcome="error", error_class="LLMTimeoutError")
    ledger.record_cache_hit(
        request_id="r3",
        provider="openai",
        model="m",
        saved_usd=0.5,
        prompt_tokens=7,
        completion_tokens=9,
        latency_ms=1.0,
    )
    ledger.reset()  # views still show history
    clock.advance(days=6)  # 2026-12-01
    spend_once(ledger, 0.25, provider="anthropic")
    db = sqlite_utils.Database(ledger.path)
    assert list(db.query("SELECT * FROM spend_by_day ORDER BY day")) == [
        {
            "day": "2026-11-25",
            "provider": "openai",
            "requests": 2,
            "errors": 1,
            "cache_hits": 1,
            "prompt_tokens": 7,
            "completion_tokens": 9,
            "cost_usd": 0.5,
            "saved_usd": 0.5,
            "input_tokens": 0,
            "cache_read_tokens": 0,
            "cache_write_tokens": 0,
            "output_tokens": 0,
            "reasoning_tokens": 0,
        },
        {
            "day": "2026-12-01",
            "provider": "anthropic",
            "requests": 1,
            "errors": 0,
            "cache_hits": 0,
            "prompt_tokens": 0,
            "completion_tokens": 0,
            "cost_usd": 0.25,
            "saved_usd": 0.0,
            "input_tokens": 0,
            "cache_read_tokens": 0,
            "cache_write_tokens": 0,
            "output_tokens": 0,
            "reasoning_tokens": 0,
        },
    ]
    months = db.query("SELECT month, provider, cost_usd FROM spend_by_month ORDER BY month")
    assert [tuple(row.values()) for row in months] == [
        ("2026-11", "openai", 0.5),
        ("2026-12", "anthropic", 0.25),
    ]
    models = db.query("SELECT day, provider, model, requests FROM spend_by_model ORDER BY day")
    assert [tuple(row.values()) for row in models][0] == ("2026-11-25", "openai", "m", 2)
    callers = db.query("SELECT day, caller, requests FROM spend_by_caller ORDER BY day")
    assert [tuple(row.values()) for row in callers] == [
        ("2026-11-25", None, 2),
        ("2026-12-01", None, 1),
    ]
