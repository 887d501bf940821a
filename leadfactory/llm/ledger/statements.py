"""The SQL the SQLite ledger runs on the request path and for its reports.

Budget sums read ``spend_totals`` (see .schema), less the stale pending rows it holds.
"""

from __future__ import annotations

from .schema import after_reset_sql, nanos_sql

INSERT_CALL = (
    "INSERT INTO calls (ts, request_id, provider, model, strategy, outcome, prompt_tokens,"
    " completion_tokens, total_tokens, reserved_usd, saved_usd, latency_ms, cached, caller)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
SETTLE_CALL = (
    "UPDATE calls SET outcome = ?, cost_usd = ?, reserved_usd = 0.0, prompt_tokens = ?,"
    " completion_tokens = ?, total_tokens = ?, latency_ms = ?, error_class = ?,"
    " model = coalesce(?, model), estimated = ? WHERE id = ? AND outcome = 'pending'"
)
INSERT_ALERT = (
    "INSERT OR IGNORE INTO alerts (ts, period, period_key, scope, threshold, limit_usd,"
    " spent_usd) VALUES (?, ?, ?, ?, ?, ?, ?)"
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
BUDGET_TOTAL = f"SELECT coalesce(sum(day), 0), coalesce(sum(month), 0) FROM ({_BUDGET_ROWS})"
COUNTS_TODAY = (
    "SELECT provider, sum(outcome != 'cache_hit'), sum(outcome = 'error'),"
    " sum(outcome = 'cache_hit') FROM calls c"
    f" WHERE ts >= substr(:now, 1, 10) AND ts < :tomorrow AND {after_reset_sql('c')}"
    " GROUP BY provider"
)
ALERTS = "SELECT period, period_key, scope, threshold, limit_usd, spent_usd FROM alerts ORDER BY id"
