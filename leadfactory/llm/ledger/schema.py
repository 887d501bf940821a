"""The SQLite ledger's file: how it is opened (through .sqlitedb) and its schema.

:func:`open_ledger_file` opens the file through :class:`~leadfactory.llm.sqlitedb.SQLiteFile` (one
connection per process, WAL, busy retries, background checkpoints); a lock that stays
busy for ``busy_timeout`` seconds raises :class:`LedgerBusyError`.

Migrations are small functions registered with ``@migration``, applied once each, in order
(recorded in sqlite-utils' ``_sqlite_migrations``, set ``leadfactory-llm-ledger``). Never
edit or reorder one that has shipped: add a new one.

Budget sums come from ``spend_totals``: running totals per (period, period key, provider),
in integer nano-dollars, that triggers on ``calls`` and ``resets`` keep in step with the
rows (rows written by hand count too), so a budget check reads a handful of rows instead
of a month of history, and a reservation taken back leaves no rounding residue.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from ..exceptions import LedgerBusyError, LLMConfigurationError
from ..sqlitedb import Migrations, SQLiteFile
from .budget import NANOS_PER_USD

if TYPE_CHECKING:  # sqlite-utils is imported only when a migration has to run
    from sqlite_utils import Database

__all__ = [
    "LEDGER_MIGRATIONS",
    "MIGRATIONS",
    "MIGRATION_SET",
    "after_reset_sql",
    "ledger_problem",
    "migrate",
    "migration",
    "nanos_sql",
    "open_ledger_file",
    "pending",
]

MIGRATION_SET = "leadfactory-llm-ledger"  # its rows in sqlite-utils' _sqlite_migrations
LEDGER_MIGRATIONS = Migrations(MIGRATION_SET)
MIGRATIONS = LEDGER_MIGRATIONS.steps  # in order; append only
migration = LEDGER_MIGRATIONS


def open_ledger_file(path: Path, *, busy_timeout: float, read_only: bool = False) -> SQLiteFile:
    """The ledger file, opened now (a bad path fails here) and migrated when needed.

    ``read_only``: nothing is created or changed (a missing file reads as an empty one).
    """

    def busy(exc: sqlite3.OperationalError) -> LedgerBusyError:
        return LedgerBusyError(
            f"the cost ledger {path} stayed locked by other writers for {busy_timeout:g}s",
            metadata={"path": str(path)},
        )

    file = SQLiteFile(
        path,
        migrations=LEDGER_MIGRATIONS,
        busy_timeout=busy_timeout,
        read_only=read_only,
        on_busy=busy,
        on_unusable=lambda exc: unusable_ledger(exc.path, exc.reason),
    )
    file.open()
    return file


def unusable_ledger(path: Path, reason: str) -> LLMConfigurationError:
    """The error for a ledger path that cannot serve, saying what to do."""
    return LLMConfigurationError(
        f"the cost ledger {path} {reason}: point LLM_LEDGER_PATH (or LLMConfig.ledger_path)"
        " at a ledger file this user can write, or move this one out of the way",
        metadata={"path": str(path), "problem": reason},
    )


def ledger_problem(path: Path) -> str | None:
    """What would stop calls from using the ledger at ``path`` (None: nothing); creates nothing."""
    reason = SQLiteFile(path, migrations=LEDGER_MIGRATIONS).problem()
    return None if reason is None else str(unusable_ledger(path, reason))


def pending(conn: sqlite3.Connection) -> list[str]:
    """Names of the ledger migrations not applied yet."""
    return LEDGER_MIGRATIONS.pending(conn)


def migrate(conn: sqlite3.Connection, *, stop_before: str | None = None) -> None:
    """Apply the pending ledger migrations, inside the caller's ``BEGIN IMMEDIATE``."""
    LEDGER_MIGRATIONS.apply(conn, stop_before=stop_before)


# The two SQL helpers below are shared by the triggers and by .statements, so both
# agree on what a row counts for. Changing them needs a migration.


def nanos_sql(row: str) -> str:
    """SQL for a row's budget-counted amount in integer nano-dollars."""
    return f"CAST(round(({row}.cost_usd + {row}.reserved_usd) * {NANOS_PER_USD}) AS INTEGER)"


def after_reset_sql(row: str) -> str:
    """SQL that is true when the row was recorded after the latest reset that applies to it."""
    return (
        f"{row}.id > coalesce((SELECT max(after_call_id) FROM resets"
        f" WHERE provider IS NULL OR provider = {row}.provider), 0)"
    )


def _add_to_totals(row: str, sign: str, amount: str | None = None) -> Iterable[str]:
    """Upserts adding ``sign`` ``amount`` (default: the row's amount) to its day and month."""
    for period, length in (("day", 10), ("month", 7)):
        yield (
            "INSERT INTO spend_totals (period, period_key, provider, spent_nano_usd)"
            f" SELECT '{period}', substr({row}.ts, 1, {length}), {row}.provider,"
            f" {sign}{amount or nanos_sql(row)} WHERE {after_reset_sql(row)}"
            " ON CONFLICT (period, period_key, provider)"
            " DO UPDATE SET spent_nano_usd = spent_nano_usd + excluded.spent_nano_usd;"
        )


@migration
def m001_calls(db: Database) -> None:
    db["calls"].create(
        {
            "id": int,
            "ts": str,
            "request_id": str,
            "provider": str,
            "model": str,
            "strategy": str,
            "outcome": str,
            "error_class": str,
            "prompt_tokens": int,
            "completion_tokens": int,
            "total_tokens": int,
            "cost_usd": float,
            "reserved_usd": float,
            "saved_usd": float,
            "latency_ms": float,
            "cached": int,
            "caller": str,
        },
        pk="id",
        not_null={"ts", "provider", "outcome", "cost_usd", "reserved_usd", "saved_usd"},
        defaults={
            "prompt_tokens": 0,
            "completion_tokens": 0,
            "total_tokens": 0,
            "cost_usd": 0.0,
            "reserved_usd": 0.0,
            "saved_usd": 0.0,
            "latency_ms": 0.0,
            "cached": 0,
        },
    )
    db["calls"].create_index(["ts"])
    db["calls"].create_index(["provider", "ts"])


@migration
def m002_resets_and_alerts(db: Database) -> None:
    # after_call_id: the largest calls.id when the reset was made; budgets count the
    # rows above it (the same as "after ts" for a steady clock, and exact on ties).
    db["resets"].create(
        {"id": int, "ts": str, "provider": str, "after_call_id": int},
        pk="id",
        not_null={"ts", "after_call_id"},
    )
    db["alerts"].create(
        {
            "id": int,
            "ts": str,
            "period": str,
            "period_key": str,
            "scope": str,
            "threshold": float,
            "limit_usd": float,
            "spent_usd": float,
        },
        pk="id",
        not_null={"ts", "period", "period_key", "scope"},
    )
    db["alerts"].create_index(["period", "period_key", "scope"], unique=True)


@migration
def m003_spend_totals(db: Database) -> None:
    db.execute(
        "CREATE TABLE spend_totals (period TEXT NOT NULL, period_key TEXT NOT NULL,"
        " provider TEXT NOT NULL, spent_nano_usd INTEGER NOT NULL,"
        " PRIMARY KEY (period, period_key, provider)) WITHOUT ROWID"
    )
    for period, length in (("day", 10), ("month", 7)):  # history already there
        db.execute(
            "INSERT INTO spend_totals SELECT ?, substr(ts, 1, ?), provider,"
            f" sum({nanos_sql('calls')}) FROM calls WHERE {after_reset_sql('calls')}"
            " GROUP BY 2, 3",
            [period, length],
        )
    insert, update, delete = (
        "\n".join(_add_to_totals("NEW", "")),
        "\n".join([*_add_to_totals("OLD", "-"), *_add_to_totals("NEW", "")]),
        "\n".join(_add_to_totals("OLD", "-")),
    )
    db.executescript(
        f"""
        CREATE TRIGGER calls_totals_insert AFTER INSERT ON calls BEGIN {insert} END;
        CREATE TRIGGER calls_totals_update
            AFTER UPDATE OF ts, provider, cost_usd, reserved_usd ON calls
            WHEN OLD.cost_usd + OLD.reserved_usd IS NOT NEW.cost_usd + NEW.reserved_usd
              OR OLD.ts IS NOT NEW.ts OR OLD.provider IS NOT NEW.provider
            BEGIN {update} END;
        CREATE TRIGGER calls_totals_delete AFTER DELETE ON calls BEGIN {delete} END;
        CREATE TRIGGER resets_clear_totals AFTER INSERT ON resets BEGIN
            DELETE FROM spend_totals WHERE NEW.provider IS NULL OR provider = NEW.provider;
        END;
        CREATE INDEX calls_pending ON calls (ts) WHERE outcome = 'pending';
        """
    )


_VIEW_COLUMNS = """sum(outcome IN ('pending', 'success', 'error')) AS requests,
    sum(outcome = 'error') AS errors,
    sum(outcome = 'cache_hit') AS cache_hits,
    sum(prompt_tokens) AS prompt_tokens,
    sum(completion_tokens) AS completion_tokens,
    total(cost_usd) AS cost_usd,
    total(saved_usd) AS saved_usd
FROM calls"""


def _spend_views(columns: str) -> dict[str, str]:
    """The spend views' queries, each summing ``columns`` (a migration's own copy)."""
    return {
        "spend_by_day": f"SELECT substr(ts, 1, 10) AS day, provider, {columns}"
        " GROUP BY day, provider",
        "spend_by_month": f"SELECT substr(ts, 1, 7) AS month, provider, {columns}"
        " GROUP BY month, provider",
        "spend_by_model": f"SELECT substr(ts, 1, 10) AS day, provider, model, {columns}"
        " GROUP BY day, provider, model",
    }


@migration
def m004_views(db: Database) -> None:
    for name, query in _spend_views(_VIEW_COLUMNS).items():
        db.create_view(name, query)


@migration
def m005_settlements_add_the_difference(db: Database) -> None:
    # A settlement changes a row's amount only: one upsert per period adds the
    # difference (two statements instead of four, on every request). A row moved to
    # another ts or provider (by hand) is still taken out of its old totals and put in
    # its new ones.
    difference = f"({nanos_sql('NEW')} - {nanos_sql('OLD')})"
    amount = "\n".join(_add_to_totals("NEW", "", difference))
    move = "\n".join([*_add_to_totals("OLD", "-"), *_add_to_totals("NEW", "")])
    db.executescript(
        f"""
        DROP TRIGGER calls_totals_update;
        CREATE TRIGGER calls_totals_update_amount
            AFTER UPDATE OF cost_usd, reserved_usd ON calls
            WHEN OLD.ts IS NEW.ts AND OLD.provider IS NEW.provider
             AND OLD.cost_usd + OLD.reserved_usd IS NOT NEW.cost_usd + NEW.reserved_usd
            BEGIN {amount} END;
        CREATE TRIGGER calls_totals_update_move
            AFTER UPDATE OF ts, provider, cost_usd, reserved_usd ON calls
            WHEN OLD.ts IS NOT NEW.ts OR OLD.provider IS NOT NEW.provider
            BEGIN {move} END;
        """
    )


@migration
def m006_calls_estimated(db: Database) -> None:
    # 1 when cost_usd is the library's estimate rather than the provider's usage: a call
    # cancelled or timed out after it was sent, an answer without usage, usage clamped.
    db.execute("ALTER TABLE calls ADD COLUMN estimated INTEGER NOT NULL DEFAULT 0")


@migration
def m007_alerts_reserved(db: Database) -> None:
    # Alerts measure settled spend; what calls in flight held is reported beside it.
    db.execute("ALTER TABLE alerts ADD COLUMN reserved_usd REAL NOT NULL DEFAULT 0.0")


# What a settled row was billed and why (ledger.writes.Billing). Rows written before
# this migration are given what they were priced as: every prompt token as uncached
# input, the completion as output, at a price whose source was not recorded (NULL).
BILLING_COLUMNS_SQL = (
    ("input_tokens", "INTEGER NOT NULL DEFAULT 0"),
    ("cache_read_tokens", "INTEGER NOT NULL DEFAULT 0"),
    ("cache_write_tokens", "INTEGER NOT NULL DEFAULT 0"),
    ("output_tokens", "INTEGER NOT NULL DEFAULT 0"),
    ("reasoning_tokens", "INTEGER NOT NULL DEFAULT 0"),
    ("input_cost_per_token", "REAL"),
    ("output_cost_per_token", "REAL"),
    ("cache_read_cost_per_token", "REAL"),
    ("cache_write_cost_per_token", "REAL"),
    ("price_source", "TEXT"),
    ("usage_clamped", "INTEGER NOT NULL DEFAULT 0"),
    ("charge_note", "TEXT"),
)
_SETTLED = "outcome IN ('success', 'error')"
BILLED_BEFORE_MIGRATION = {  # each billed count, as SQL over a row written before them
    "input_tokens": f"CASE WHEN {_SETTLED} THEN prompt_tokens ELSE 0 END",
    "cache_read_tokens": "0",
    "cache_write_tokens": "0",
    "output_tokens": f"CASE WHEN {_SETTLED} THEN completion_tokens ELSE 0 END",
    "reasoning_tokens": "0",
}
BACKFILL_BILLING = (
    "UPDATE calls SET input_tokens = prompt_tokens, output_tokens = completion_tokens"
    f" WHERE {_SETTLED}"
)
BILLED_SUMS = """sum(input_tokens) AS input_tokens,
    sum(cache_read_tokens) AS cache_read_tokens,
    sum(cache_write_tokens) AS cache_write_tokens,
    sum(output_tokens) AS output_tokens,
    sum(reasoning_tokens) AS reasoning_tokens,
    """


@migration
def m008_calls_billing(db: Database) -> None:
    for name, kind in BILLING_COLUMNS_SQL:
        db.execute(f"ALTER TABLE calls ADD COLUMN {name} {kind}")
    db.execute(BACKFILL_BILLING)  # touches no amount: the totals' triggers stay quiet
    columns = _VIEW_COLUMNS.replace("total(cost_usd)", BILLED_SUMS + "total(cost_usd)")
    views = _spend_views(columns)
    views["spend_by_caller"] = (
        f"SELECT substr(ts, 1, 10) AS day, caller, {columns} GROUP BY day, caller"
    )
    for name, query in views.items():
        db.execute(f"DROP VIEW IF EXISTS {name}")
        db.create_view(name, query)


@migration
def m009_batch_items(db: Database) -> None:
    # The answers of named batch runs (leadfactory.llm.batch): a rerun of the run returns
    # them instead of asking a provider again. ``response`` is the response dict as JSON.
    db.execute(
        "CREATE TABLE batch_items (run TEXT NOT NULL, item_id TEXT NOT NULL, ts TEXT NOT NULL,"
        " cost_usd REAL NOT NULL DEFAULT 0, response TEXT NOT NULL,"
        " PRIMARY KEY (run, item_id)) WITHOUT ROWID"
    )
