"""The SQL the SQLite ledger runs on the request path and for its reports.

Budget sums read ``spend_totals`` (see .schema), less the stale pending rows it holds.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from .schema import BILLED_BEFORE_MIGRATION, after_reset_sql, nanos_sql
from .writes import BILLING_COLUMNS

INSERT_CALL = (
    "INSERT INTO calls (ts, request_id, provider, model, strategy, outcome, prompt_tokens,"
    " completion_tokens, total_tokens, reserved_usd, saved_usd, latency_ms, cached, caller)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
SETTLE_CALL = (
    "UPDATE calls SET outcome = ?, cost_usd = ?, reserved_usd = 0.0, prompt_tokens = ?,"
    " completion_tokens = ?, total_tokens = ?, latency_ms = ?, error_class = ?,"
    " model = coalesce(?, model), estimated = ?, "
    + ", ".join(f"{column} = ?" for column in BILLING_COLUMNS)
    + " WHERE id = ? AND outcome = 'pending'"
)
INSERT_ALERT = (
    "INSERT OR IGNORE INTO alerts (ts, period, period_key, scope, threshold, limit_usd,"
    " spent_usd, reserved_usd) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
INSERT_RESET = (
    "INSERT INTO resets (ts, provider, after_call_id)"
    " VALUES (?, ?, (SELECT coalesce(max(id), 0) FROM calls))"
)
# Nano-dollars per provider for the day and the month holding :now: the running totals,
# less the pending rows older than :cutoff (the totals hold them, budgets ignore them).
_BUDGET_ROWS = f"""
    SELECT provider, CASE period WHEN 'day' THEN spent_nano_usd ELSE 0 END AS day,
           CASE period WHEN 'month' THEN spent_nano_usd ELSE 0 END AS month
    FROM spend_totals WHERE (period = 'day' AND period_key = substr(:now, 1, 10))
                         OR (period = 'month' AND period_key = substr(:now, 1, 7))
    UNION ALL
    SELECT provider, CASE WHEN ts >= substr(:now, 1, 10) THEN -{nanos_sql("c")} ELSE 0 END,
           -{nanos_sql("c")}
    FROM calls c WHERE outcome = 'pending' AND ts >= substr(:now, 1, 7) AND ts < :cutoff
                   AND {after_reset_sql("c")}"""
BUDGET_SPEND = f"SELECT provider, sum(day), sum(month) FROM ({_BUDGET_ROWS}) GROUP BY provider"
# The same, summed over providers: one row, for the budget check on the request path.
BUDGET_TOTAL = (
    f"SELECT coalesce(sum(day), 0) AS day, coalesce(sum(month), 0) AS month FROM ({_BUDGET_ROWS})"
)
# What alerts measure, in nano-dollars for the day and the month holding :now. The running
# totals (every row, pending ones at their estimate: at least the settled spend, read in
# a few rows) come first; only when they reach a threshold are the pending rows read:
# their estimates, and those of the pending rows not stale yet (budget.settled_and_reserved).
RUNNING_TOTALS = """
    SELECT (SELECT coalesce(sum(spent_nano_usd), 0) FROM spend_totals
            WHERE period = 'day' AND period_key = substr(:now, 1, 10)),
           (SELECT coalesce(sum(spent_nano_usd), 0) FROM spend_totals
            WHERE period = 'month' AND period_key = substr(:now, 1, 7))"""
PENDING_SUMS = f"""
    SELECT coalesce(sum(CASE WHEN ts >= substr(:now, 1, 10) THEN n END), 0), coalesce(sum(n), 0),
           coalesce(sum(CASE WHEN ts >= substr(:now, 1, 10) AND ts >= :cutoff THEN n END), 0),
           coalesce(sum(CASE WHEN ts >= :cutoff THEN n END), 0)
    FROM (SELECT ts, {nanos_sql("c")} AS n FROM calls c
          WHERE outcome = 'pending' AND ts >= substr(:now, 1, 7) AND {after_reset_sql("c")})"""
# A reservation: a pending row holding :estimate. A paid one is written only if
# lf_admit (.admission) admits it against the spend read under the same write lock.
_PENDING_COLUMNS = "ts, request_id, provider, model, strategy, outcome, reserved_usd, caller"
_PENDING_VALUES = ":ts, :request_id, :provider, :model, :strategy, 'pending', :estimate, :caller"
RESERVE_FREE = f"INSERT INTO calls ({_PENDING_COLUMNS}) VALUES ({_PENDING_VALUES})"
RESERVE_CALL = (
    f"INSERT INTO calls ({_PENDING_COLUMNS}) SELECT {_PENDING_VALUES}"
    f" FROM ({BUDGET_TOTAL}) WHERE lf_admit(day, month)"
)
COUNTS_TODAY = (
    "SELECT provider, sum(outcome != 'cache_hit'), sum(outcome = 'error'),"
    " sum(outcome = 'cache_hit') FROM calls c"
    f" WHERE ts >= substr(:now, 1, 10) AND ts < :tomorrow AND {after_reset_sql('c')}"
    " GROUP BY provider"
)


def alerts_query(conn: sqlite3.Connection) -> str:
    """Every alert, oldest first (a file not migrated yet, read-only, has no reserved_usd)."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(alerts)")}
    reserved = "reserved_usd" if "reserved_usd" in columns else "0.0"
    return (
        f"SELECT period, period_key, scope, threshold, limit_usd, spent_usd, {reserved}"
        " FROM alerts ORDER BY id"
    )


# What the ``costs`` report sums, per grouping: (select, group by).
_GROUPS = {
    "day": ("substr(ts, 1, 10) AS day", "day"),
    "month": ("substr(ts, 1, 7) AS month", "month"),
    "provider": ("provider", "provider"),
    "model": ("provider, model", "provider, model"),
    "caller": ("caller", "caller"),
}
_SUMS = (
    "COUNT(*) AS calls, SUM(outcome = 'error') AS errors, SUM(outcome = 'cache_hit') AS cache_hits,"
    " SUM(prompt_tokens) AS prompt_tokens, SUM(completion_tokens) AS completion_tokens,"
    " ROUND(SUM(cost_usd), 12) AS cost_usd, ROUND(SUM(saved_usd), 12) AS saved_usd"
)


def totals(conn: sqlite3.Connection, by: str, since: str | None) -> tuple[str, list[Any]]:
    """The query (and its parameters) summing settled rows ``by`` a grouping."""
    select, group = _GROUPS[by]
    where, params = "WHERE outcome != 'pending'", []
    if since:
        where += " AND ts >= ?"
        params.append(since)
    # rows whose cost is an estimate (a file not migrated yet, read-only, has none)
    columns = {row[1] for row in conn.execute("PRAGMA table_info(calls)")}
    estimated = "SUM(estimated)" if "estimated" in columns else "0"
    billed = ", ".join(
        f"SUM({name if name in columns else unmigrated}) AS {name}"
        for name, unmigrated in BILLED_BEFORE_MIGRATION.items()
    )
    query = (
        f"SELECT {select}, {_SUMS}, {estimated} AS estimated, {billed} FROM calls {where}"
        f" GROUP BY {group} ORDER BY {group}"
    )
    return query, params
