"""The PostgreSQL ledger's schema, its migrations and the statements its ledger runs.

The tables mirror the SQLite ledger's (``calls``, ``resets``, ``alerts``, and the views
``spend_by_day``, ``spend_by_month``, ``spend_by_model``, ``spend_by_caller``) in the
schema the URL's ``search_path`` selects, with ``ts`` as ``timestamptz``. Migrations
are numbered lists of statements, applied once each and recorded in
``leadfactory_ledger_migrations``; a transaction-scoped advisory lock makes hosts that
start together take turns, so each runs once. Never edit one that has shipped: add one.

Budget sums come from ``spend_totals``: running nano-dollar totals per (period, period
key, provider, shard). A write adds to the rows of its connection's shard
(``pg_backend_pid() % SHARDS``), so concurrent writers seldom wait for each other's
commits, and each transaction adds its amounts in one sorted upsert, so two writers
never lock the same rows in different orders.
"""

from __future__ import annotations

from typing import Any

from .schema import BACKFILL_BILLING, BILLED_BEFORE_MIGRATION, BILLED_SUMS, BILLING_COLUMNS_SQL
from .writes import BILLING_COLUMNS

__all__ = ["MIGRATIONS", "SHARDS", "migrate"]

SHARDS = 16
NANOS = "1000000000"
_LOCK = "hashtext('leadfactory-llm-ledger:' || current_schema())"
WRITE_LOCK = f"SELECT pg_advisory_xact_lock_shared({_LOCK})"  # every write: shared
# The same for a transaction that only reserves or withdraws: it commits without waiting
# for the disk (see postgres.py: the settlement's durable commit makes it durable too).
RESERVE_LOCK = (
    f"SELECT pg_advisory_xact_lock_shared({_LOCK}), set_config('synchronous_commit', 'off', true)"
)
RESET_LOCK = f"SELECT pg_advisory_xact_lock({_LOCK})"  # a reset waits for writers in flight


def nanos_sql(row: str) -> str:
    """SQL for a row's budget-counted amount in integer nano-dollars."""
    return f"round(({row}.cost_usd + {row}.reserved_usd) * {NANOS})::bigint"


def counted_sql(row: str) -> str:
    """SQL that is true when the row came after the latest reset that applies to it."""
    return (
        f"{row}.id > coalesce((SELECT max(after_call_id) FROM resets"
        f" WHERE provider IS NULL OR provider = {row}.provider), 0)"
    )


_VIEW_COLUMNS = """count(*) FILTER (WHERE outcome IN ('pending', 'success', 'error')) AS requests,
    count(*) FILTER (WHERE outcome = 'error') AS errors,
    count(*) FILTER (WHERE outcome = 'cache_hit') AS cache_hits,
    sum(prompt_tokens) AS prompt_tokens,
    sum(completion_tokens) AS completion_tokens,
    coalesce(sum(cost_usd), 0) AS cost_usd,
    coalesce(sum(saved_usd), 0) AS saved_usd
FROM calls"""
_DAY = "to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
_MONTH = "to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM')"
_BILLED_VIEW_COLUMNS = _VIEW_COLUMNS.replace(
    "coalesce(sum(cost_usd)", BILLED_SUMS + "coalesce(sum(cost_usd)"
)


def _pg(kind: str) -> str:
    """A column type of the SQLite ledger's, as PostgreSQL spells it."""
    return kind.replace("REAL", "double precision").replace("INTEGER", "bigint")


def _views(columns: str) -> list[tuple[str, str]]:
    """The spend views' queries, each summing ``columns`` (a migration's own copy)."""
    return [
        ("spend_by_day", f"SELECT {_DAY} AS day, provider, {columns} GROUP BY 1, 2"),
        ("spend_by_month", f"SELECT {_MONTH} AS month, provider, {columns} GROUP BY 1, 2"),
        ("spend_by_model", f"SELECT {_DAY} AS day, provider, model, {columns} GROUP BY 1, 2, 3"),
        ("spend_by_caller", f"SELECT {_DAY} AS day, caller, {columns} GROUP BY 1, 2"),
    ]


MIGRATIONS: list[tuple[str, list[str]]] = [
    (
        "m001_calls",
        [
            """CREATE TABLE calls (
                id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                ts timestamptz NOT NULL, request_id text, provider text NOT NULL,
                model text, strategy text, outcome text NOT NULL, error_class text,
                prompt_tokens bigint NOT NULL DEFAULT 0,
                completion_tokens bigint NOT NULL DEFAULT 0,
                total_tokens bigint NOT NULL DEFAULT 0,
                cost_usd double precision NOT NULL DEFAULT 0,
                reserved_usd double precision NOT NULL DEFAULT 0,
                saved_usd double precision NOT NULL DEFAULT 0,
                latency_ms double precision NOT NULL DEFAULT 0,
                cached integer NOT NULL DEFAULT 0, caller text,
                estimated integer NOT NULL DEFAULT 0)""",
            "CREATE INDEX calls_ts ON calls (ts)",
            "CREATE INDEX calls_provider_ts ON calls (provider, ts)",
            "CREATE INDEX calls_pending ON calls (ts) WHERE outcome = 'pending'",
        ],
    ),
    (
        "m002_resets_alerts_totals",
        [
            """CREATE TABLE resets (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                ts timestamptz NOT NULL, provider text, after_call_id bigint NOT NULL)""",
            """CREATE TABLE alerts (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                ts timestamptz NOT NULL, period text NOT NULL, period_key text NOT NULL,
                scope text NOT NULL, threshold double precision,
                limit_usd double precision, spent_usd double precision,
                UNIQUE (period, period_key, scope))""",
            """CREATE TABLE spend_totals (period text NOT NULL, period_key text NOT NULL,
                provider text NOT NULL, shard integer NOT NULL,
                spent_nano_usd bigint NOT NULL,
                PRIMARY KEY (period, period_key, provider, shard))""",
        ],
    ),
    ("m003_views", [f"CREATE VIEW {name} AS {query}" for name, query in _views(_VIEW_COLUMNS)]),
    (  # alerts measure settled spend; what calls in flight held is reported beside it
        "m004_alerts_reserved",
        ["ALTER TABLE alerts ADD COLUMN reserved_usd double precision NOT NULL DEFAULT 0"],
    ),
    (  # what a settled row was billed and why (as the SQLite ledger's m008_calls_billing)
        "m005_calls_billing",
        [
            "ALTER TABLE calls "
            + ", ".join(f"ADD COLUMN {name} {_pg(kind)}" for name, kind in BILLING_COLUMNS_SQL),
            BACKFILL_BILLING,
            *(f"DROP VIEW {name}" for name, _ in _views("")),
            *(f"CREATE VIEW {name} AS {query}" for name, query in _views(_BILLED_VIEW_COLUMNS)),
        ],
    ),
    (  # the answers of named batch runs (ledger/postgres_runs.py)
        "m006_batch_items",
        [
            """CREATE TABLE batch_items (run text NOT NULL, item_id text NOT NULL,
                ts timestamptz NOT NULL DEFAULT now(),
                cost_usd double precision NOT NULL DEFAULT 0, response text NOT NULL,
                PRIMARY KEY (run, item_id))""",
        ],
    ),
]

_HISTORY = "leadfactory_ledger_migrations"


def migrate(conn: Any) -> list[str]:
    """Apply the pending migrations on ``conn`` (autocommit); returns the names applied.

    Reads only when the schema is current; otherwise, in one transaction under an
    advisory lock, so hosts starting together take turns and each migration runs once.
    """
    if not _pending(conn):
        return []
    with conn.transaction():
        conn.execute(f"SELECT pg_advisory_xact_lock(hashtext('{_HISTORY}:' || current_schema()))")
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {_HISTORY}"
            " (name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        applied = _pending(conn)
        for name, statements in MIGRATIONS:
            if name in applied:
                for statement in statements:
                    conn.execute(statement)
                conn.execute(f"INSERT INTO {_HISTORY} (name) VALUES (%s)", [name])
    return applied


def _pending(conn: Any) -> list[str]:
    if conn.execute("SELECT to_regclass(%s)", [_HISTORY]).fetchone()[0] is None:
        return [name for name, _ in MIGRATIONS]
    done = {row[0] for row in conn.execute(f"SELECT name FROM {_HISTORY}")}
    return [name for name, _ in MIGRATIONS if name not in done]


# -- the statements postgres.py runs -----------------------------------------------------

_CALL_COLUMNS = (
    "ts, request_id, provider, model, strategy, outcome, prompt_tokens, completion_tokens,"
    " total_tokens, cost_usd, reserved_usd, saved_usd, latency_ms, cached, caller"
)
INSERT_CALL = (
    f"INSERT INTO calls ({_CALL_COLUMNS}) VALUES"
    " (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
    f" RETURNING id, ts, provider, {nanos_sql('calls')} AS amount, true AS counted"
)
# The old amount comes from the row as it was (``o``), the new one from ``c``.
SETTLE_CALL = f"""UPDATE calls c SET outcome = %s, cost_usd = %s, reserved_usd = 0,
    prompt_tokens = %s, completion_tokens = %s, total_tokens = %s, latency_ms = %s,
    error_class = %s, model = coalesce(%s, c.model), estimated = %s,
    {", ".join(f"{column} = %s" for column in BILLING_COLUMNS)}
    FROM calls o WHERE c.id = %s AND c.request_id = %s AND o.id = c.id
    AND c.outcome = 'pending'
    RETURNING c.ts, c.provider, {nanos_sql("c")} - {nanos_sql("o")} AS amount,
        {counted_sql("c")} AS counted"""
# A settlement whose pending row is gone (lost in a server crash with the reservation's
# commit) writes the row again under its id, settled, unless a row has that id (settled
# already); the id sequence, which the crash may have set back, is moved past it.
_RESTORED = (
    "id, ts, request_id, provider, outcome, cost_usd, prompt_tokens, completion_tokens,"
    " total_tokens, latency_ms, error_class, model, estimated, " + ", ".join(BILLING_COLUMNS)
)
RESTORE_CALL = f"""INSERT INTO calls ({_RESTORED}) OVERRIDING SYSTEM VALUE
    VALUES ({", ".join(["%s"] * (13 + len(BILLING_COLUMNS)))}) ON CONFLICT (id) DO NOTHING
    RETURNING ts, provider, {nanos_sql("calls")}, {counted_sql("calls")}"""
_ID_SEQUENCE = "pg_get_serial_sequence('calls', 'id')"
SEQUENCE_PAST = f"SELECT setval({_ID_SEQUENCE}, greatest(nextval({_ID_SEQUENCE}), %s))"
WITHDRAW_CALL = (
    "DELETE FROM calls c WHERE id = %s AND outcome = 'pending'"
    f" RETURNING c.ts, c.provider, -{nanos_sql('c')}, {counted_sql('c')}"
)
ADD_TO_TOTALS = (
    "INSERT INTO spend_totals (period, period_key, provider, shard, spent_nano_usd)"
    f" SELECT period, period_key, provider, pg_backend_pid() %% {SHARDS}, amount"
    " FROM unnest(%s::text[], %s::text[], %s::text[], %s::bigint[])"
    " AS d(period, period_key, provider, amount)"
    " ON CONFLICT (period, period_key, provider, shard)"
    " DO UPDATE SET spent_nano_usd = spend_totals.spent_nano_usd + excluded.spent_nano_usd"
)


# One write with its totals in one statement, for a transaction of that write alone
# (after the lock): the row written (``statement`` returns ts, provider, amount and
# counted) and its amount added to this connection's day and month rows, in key order.
# Batches add their totals in one sorted upsert instead (ADD_TO_TOTALS).
def _with_totals(statement: str) -> str:
    return f"""WITH w AS ({statement}), t AS (
    INSERT INTO spend_totals (period, period_key, provider, shard, spent_nano_usd)
    SELECT p.period, to_char(w.ts AT TIME ZONE 'UTC', p.format), w.provider,
        pg_backend_pid() %% {SHARDS}, w.amount
    FROM w, (VALUES ('day', 'YYYY-MM-DD'), ('month', 'YYYY-MM')) AS p(period, format)
    WHERE w.counted ORDER BY p.period
    ON CONFLICT (period, period_key, provider, shard)
    DO UPDATE SET spent_nano_usd = spend_totals.spent_nano_usd + excluded.spent_nano_usd)
    SELECT * FROM w"""


INSERT_ONE = _with_totals(INSERT_CALL)
SETTLE_ONE = _with_totals(SETTLE_CALL)
INSERT_ALERT = (
    "INSERT INTO alerts (ts, period, period_key, scope, threshold, limit_usd, spent_usd,"
    " reserved_usd) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING id"
)
ALERTS = (
    "SELECT period, period_key, scope, threshold, limit_usd, spent_usd, reserved_usd"
    " FROM alerts ORDER BY id"
)
INSERT_RESET = (
    "INSERT INTO resets (ts, provider, after_call_id)"
    " VALUES (%s, %s, (SELECT coalesce(max(id), 0) FROM calls))"
)
CLEAR_TOTALS = (
    "DELETE FROM spend_totals WHERE %(provider)s::text IS NULL OR provider = %(provider)s"
)
# Nano-dollars per provider for the day and the month holding now: the running totals,
# less the pending rows older than the cutoff (the totals hold them, budgets ignore them).
BUDGET_SPEND = f"""SELECT provider, sum(day)::bigint, sum(month)::bigint FROM (
    SELECT provider, CASE WHEN period = 'day' THEN spent_nano_usd ELSE 0 END AS day,
           CASE WHEN period = 'month' THEN spent_nano_usd ELSE 0 END AS month
    FROM spend_totals WHERE (period = 'day' AND period_key = %(day)s)
                         OR (period = 'month' AND period_key = %(month)s)
    UNION ALL
    SELECT provider, CASE WHEN ts >= %(day_start)s THEN -{nanos_sql("c")} ELSE 0 END,
           -{nanos_sql("c")}
    FROM calls c WHERE outcome = 'pending' AND ts >= %(month_start)s AND ts < %(cutoff)s
                   AND {counted_sql("c")}) AS s GROUP BY provider"""
# What alerts measure (as the SQLite ledger's RUNNING_TOTALS and PENDING_SUMS): the running
# totals of the day and month; when they reach a threshold, the pending rows' estimates
# and those of the pending rows not stale yet.
_TOTAL = "(SELECT coalesce(sum(spent_nano_usd), 0) FROM spend_totals WHERE period = '{}'"
RUNNING_TOTALS = f"""SELECT {_TOTAL.format("day")} AND period_key = %(day)s)::bigint,
    {_TOTAL.format("month")} AND period_key = %(month)s)::bigint"""
PENDING_SUMS = f"""SELECT
    coalesce(sum(n) FILTER (WHERE ts >= %(day_start)s), 0)::bigint, coalesce(sum(n), 0)::bigint,
    coalesce(sum(n) FILTER (WHERE ts >= %(day_start)s AND ts >= %(cutoff)s), 0)::bigint,
    coalesce(sum(n) FILTER (WHERE ts >= %(cutoff)s), 0)::bigint
    FROM (SELECT ts, {nanos_sql("c")} AS n FROM calls c WHERE outcome = 'pending'
          AND ts >= %(month_start)s AND {counted_sql("c")}) AS p"""
COUNTS_TODAY = f"""SELECT provider, count(*) FILTER (WHERE outcome != 'cache_hit'),
    count(*) FILTER (WHERE outcome = 'error'), count(*) FILTER (WHERE outcome = 'cache_hit')
    FROM calls c WHERE ts >= %(day_start)s AND ts < %(day_end)s AND {counted_sql("c")}
    GROUP BY provider"""
# What ``leadfactory-llm costs`` sums, by each grouping it offers (as the SQLite query).
COST_GROUPS = {  # (columns selected, how many)
    "day": (f"{_DAY} AS day", 1),
    "month": (f"{_MONTH} AS month", 1),
    "provider": ("provider", 1),
    "model": ("provider, model", 2),
    "caller": ("caller", 1),
}
COST_SUMS = (
    "count(*) AS calls, count(*) FILTER (WHERE outcome = 'error') AS errors,"
    " count(*) FILTER (WHERE outcome = 'cache_hit') AS cache_hits,"
    " sum(prompt_tokens)::bigint AS prompt_tokens,"
    " sum(completion_tokens)::bigint AS completion_tokens,"
    " round(sum(cost_usd)::numeric, 12)::float8 AS cost_usd,"
    " round(sum(saved_usd)::numeric, 12)::float8 AS saved_usd,"
    " sum(estimated)::bigint AS estimated, "
    + ", ".join(f"sum({name})::bigint AS {name}" for name in BILLED_BEFORE_MIGRATION)
)


def costs_query(by: str) -> str:
    """The grouped sums of the calls settled since ``%(since)s`` (None: all)."""
    select, columns = COST_GROUPS[by]
    group = ", ".join(str(n + 1) for n in range(columns))
    return (
        f"SELECT {select}, {COST_SUMS} FROM calls WHERE outcome != 'pending'"
        f" AND (%(since)s::timestamptz IS NULL OR ts >= %(since)s)"
        f" GROUP BY {group} ORDER BY {group}"
    )
