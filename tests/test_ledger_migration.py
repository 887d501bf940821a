"""A ledger file written by release 0.1.0 opens, migrates, keeps its rows and totals.

``tests/fixtures/ledger-0.1.0.sqlite`` was written by 0.1.0's own code (main at
8dedcfd, ledger migrations m001 to m006) by ``tests/fixtures/make_ledger_0_1_0.py``,
whose docstring says how it was run: two providers over two UTC days (2026-11-24 and
2026-11-25), nine rows: settled, failed, released, estimated, a cache hit and a
reservation that was never settled. Each test works on a copy in a temp folder.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from leadfactory.llm.cli import main
from leadfactory.llm.ledger import Billing, Budget, CostLedger
from leadfactory.llm.ledger.schema import MIGRATIONS, pending

FIXTURE = Path(__file__).parent / "fixtures" / "ledger-0.1.0.sqlite"
AFTER = datetime(2026, 11, 25, 14, 1, tzinfo=UTC)  # a minute after its last row
AFTER_0_1_0 = [step.__name__ for step in MIGRATIONS[6:]]  # m007 on: what 0.1.0 lacks
OLD_COLUMNS = [
    "id", "ts", "request_id", "provider", "model", "strategy", "outcome", "error_class",
    "prompt_tokens", "completion_tokens", "total_tokens", "cost_usd", "reserved_usd",
    "saved_usd", "latency_ms", "cached", "caller", "estimated",
]  # fmt: skip
# What the fixture holds, from make_ledger_0_1_0.py: settled cost per provider
# (the pending row holds 0.05 for openai; the cache hit saved 0.0125).
OPENAI_COST = 0.0125 + 0.00075
ANTHROPIC_COST = 0.0105 + 0.02 + 0.003


@pytest.fixture
def old_file(tmp_path) -> Path:
    copy = tmp_path / "ledger.db"
    shutil.copyfile(FIXTURE, copy)
    return copy


def raw_rows(path: Path) -> list[dict]:
    with sqlite3.connect(path) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(row) for row in conn.execute("SELECT * FROM calls ORDER BY id")]


def costs_json(path: Path, by: str, capsys) -> list[dict]:
    assert main(["costs", "--ledger", str(path), "--by", by, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_the_fixture_is_a_0_1_0_ledger():
    with sqlite3.connect(f"file:{FIXTURE}?mode=ro", uri=True) as conn:
        # m001..m006 applied, nothing later
        assert pending(conn) == AFTER_0_1_0
        columns = [row[1] for row in conn.execute("PRAGMA table_info(calls)")]
    assert columns == OLD_COLUMNS
    rows = raw_rows(FIXTURE)
    assert len(rows) == 9 and {row["provider"] for row in rows} == {"openai", "anthropic"}
    assert [row["outcome"] for row in rows].count("cache_hit") == 1


def test_opening_migrates_and_keeps_every_row_and_total(old_file):
    before = raw_rows(old_file)
    with CostLedger(old_file, read_only=True, clock=lambda: AFTER) as reader:
        totals_before = {by: reader.totals(by=by) for by in ("day", "provider", "model")}
        spend_before = (reader.spend(), reader.spend(period="month"))

    with CostLedger(old_file, clock=lambda: AFTER) as ledger:
        after = ledger.rows()
        with sqlite3.connect(old_file) as conn:
            assert pending(conn) == []
        assert [{c: row[c] for c in OLD_COLUMNS} for row in after] == before
        assert (ledger.spend(), ledger.spend(period="month")) == pytest.approx(spend_before)
        assert ledger.spend(period="month") == pytest.approx(OPENAI_COST + ANTHROPIC_COST + 0.05)
        for by, rows in totals_before.items():
            migrated = ledger.totals(by=by)
            assert [{k: row[k] for k in rows[0]} for row in migrated] == rows
        providers = {row["provider"]: row for row in ledger.totals(by="provider")}
        assert providers["openai"]["cost_usd"] == pytest.approx(OPENAI_COST)
        assert providers["anthropic"]["cost_usd"] == pytest.approx(ANTHROPIC_COST)

        # old rows say what they were priced as: every prompt token uncached, no source
        for row in after:
            billed = row["outcome"] in ("success", "error")
            assert row["input_tokens"] == (row["prompt_tokens"] if billed else 0)
            assert row["output_tokens"] == (row["completion_tokens"] if billed else 0)
            assert row["cache_read_tokens"] == row["cache_write_tokens"] == 0
            assert row["price_source"] is None and row["usage_clamped"] == 0

        # and the file takes new rows, billing and all
        budget = Budget(max_cost_per_request=1.0, daily_limit=10.0, monthly_limit=100.0)
        held = ledger.reserve(
            request_id="new", provider="openai", model="gpt-4o", estimated_usd=0.01, budget=budget
        )
        billing = Billing(10, 0, 0, 5, 0, 2.5e-6, 1e-5, 1.25e-6, 2.5e-6, "litellm_map")
        ledger.settle(held, outcome="success", cost_usd=7.5e-5, prompt_tokens=10,
                      completion_tokens=5, billing=billing)  # fmt: skip
        assert ledger.rows()[-1]["price_source"] == "litellm_map"
        assert len(ledger.rows()) == len(before) + 1


def test_costs_reads_the_old_file_before_and_after_migration(old_file, capsys):
    unmigrated = costs_json(old_file, "provider", capsys)  # read-only: nothing migrated
    with sqlite3.connect(old_file) as conn:
        assert pending(conn) == AFTER_0_1_0
    CostLedger(old_file).close()  # migrates
    migrated = costs_json(old_file, "provider", capsys)
    assert unmigrated == migrated
    by_provider = {row["provider"]: row for row in migrated}
    assert by_provider["openai"]["calls"] == 5  # the pending row is not counted
    assert by_provider["openai"]["cost_usd"] == pytest.approx(OPENAI_COST)
    assert by_provider["anthropic"]["cost_usd"] == pytest.approx(ANTHROPIC_COST)
    assert by_provider["anthropic"]["estimated"] == 2
    assert main(["costs", "--ledger", str(old_file), "--by", "day"]) == 0
    table = capsys.readouterr().out
    assert "2026-11-24" in table and "2026-11-25" in table


def test_a_postgres_ledger_of_0_1_0_migrates_and_keeps_its_rows(postgres_url, monkeypatch):
    """The same for PostgreSQL: a schema at 0.1.0's migrations, with rows, opened anew."""
    import psycopg

    from leadfactory.llm.ledger import postgres_schema
    from leadfactory.llm.ledger.postgres import PostgresLedger

    released = [(name, steps) for name, steps in postgres_schema.MIGRATIONS][:3]
    assert [name for name, _ in released][-1] == "m003_views"  # 0.1.0's last one
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        monkeypatch.setattr(postgres_schema, "MIGRATIONS", released)
        postgres_schema.migrate(conn)
        monkeypatch.undo()
        for row in raw_rows(FIXTURE):  # the SQLite fixture's rows, as 0.1.0 wrote them
            values = [row[c] for c in OLD_COLUMNS[1:]]
            conn.execute(
                f"INSERT INTO calls ({', '.join(OLD_COLUMNS[1:])})"
                f" VALUES ({', '.join(['%s'] * len(values))})",
                values,
            )
    with CostLedger(FIXTURE, read_only=True) as reader:
        expected = reader.totals(by="provider")
    with PostgresLedger(postgres_url, clock=lambda: AFTER) as ledger:
        rows = ledger.rows()
        assert len(rows) == 9
        for row in rows:
            billed = row["outcome"] in ("success", "error")
            assert row["input_tokens"] == (row["prompt_tokens"] if billed else 0)
            assert row["output_tokens"] == (row["completion_tokens"] if billed else 0)
            assert row["price_source"] is None
        totals = ledger.totals(by="provider")
        assert [{k: row[k] for k in expected[0]} for row in totals] == expected
