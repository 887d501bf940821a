"""A lone ledger write in one round trip, on statements each connection prepares once.

The write of one reservation, settlement, release or cache hit is one simple query:
BEGIN; the lock; ``EXECUTE`` of the write with its totals; COMMIT; and the read that
must follow the commit (the budget check, the running totals for alerts), also an
``EXECUTE``. The statements are prepared (SQL ``PREPARE``) on each connection the first
time it writes alone, so the server parses and plans them once per connection instead
of on every call: that planning was most of a write's server time (a reservation with
its budget read took 0.54-0.66 ms of server CPU unprepared, 0.13-0.2 ms prepared, on
this project's machines). A connection whose statements are gone (a ``DEALLOCATE ALL``)
prepares the missing ones and runs the write again, once: the error aborted its
transaction, so nothing was written. A pooler in transaction mode, whose server
connections do not follow a client's session, is not supported (docs/scaling.md).
"""

from __future__ import annotations

import re
import weakref
from typing import Any

from . import postgres_schema as sql

__all__ = ["write_alone"]

# The statements a lone write runs, by their text in postgres_schema, and their names.
_NAMES = {
    sql.INSERT_ONE: "lf_ledger_insert_one",
    sql.SETTLE_ONE: "lf_ledger_settle_one",
    sql.BUDGET_SPEND: "lf_ledger_budget_spend",
    sql.RUNNING_TOTALS: "lf_ledger_running_totals",
}
_PLACEHOLDER = re.compile(r"%\((\w+)\)s|%s|%%")


def _prepared(name: str, query: str) -> tuple[str, str]:
    """``PREPARE name AS ...`` for ``query`` (psycopg placeholders become ``$n``, a
    named one the same ``$n`` each time) and the ``EXECUTE name(...)`` template whose
    placeholders take the same arguments as ``query``."""
    order: list[str | None] = []

    def number(match: re.Match[str]) -> str:
        if match.group(0) == "%%":
            return "%"
        key = match.group(1)
        if key is None or key not in order:
            order.append(key)
            return f"${len(order)}"
        return f"${order.index(key) + 1}"

    body = _PLACEHOLDER.sub(number, query)
    arguments = ", ".join("%s" if key is None else f"%({key})s" for key in order)
    return f"PREPARE {name} AS {body}", f"EXECUTE {name}({arguments})"


_STATEMENTS = {query: _prepared(name, query) for query, name in _NAMES.items()}
_READY: weakref.WeakSet[Any] = weakref.WeakSet()  # connections that prepared them


def write_alone(
    conn: Any, lock: str, statement: tuple[str, Any], follow: tuple[str, Any] | None
) -> tuple[list[Any], list[Any] | None]:
    """Run ``statement`` (its query and arguments) in a transaction of its own after
    ``lock``, then ``follow`` after the COMMIT, as one query: its own snapshot, which
    sees the write. Returns the rows the write returned and those ``follow`` read."""
    import psycopg
    from psycopg import ClientCursor
    from psycopg.pq import TransactionStatus

    cursor = ClientCursor(conn)  # binds here: one simple query of several statements
    parts = ["BEGIN", lock, _execute(cursor, *statement), "COMMIT"]
    if follow is not None:
        parts.append(_execute(cursor, *follow))
    text = "; ".join(parts)
    for attempt in (1, 2):
        if conn not in _READY:
            _prepare(conn)
        try:
            cursor.execute(text, prepare=False)
            break
        except psycopg.errors.InvalidSqlStatementName:
            _READY.discard(conn)
            if attempt == 2 or conn.info.transaction_status != TransactionStatus.INERROR:
                raise  # not in the aborted transaction: the write may have committed
            conn.rollback()
    cursor.nextset()  # results: BEGIN, the lock, the write, COMMIT, the read
    cursor.nextset()
    rows = cursor.fetchall()
    read = None
    if follow is not None:
        cursor.nextset()
        cursor.nextset()
        read = cursor.fetchall()
    return rows, read


def _prepare(conn: Any) -> None:
    """Prepare on ``conn`` those of the statements it does not have."""
    names = list(_NAMES.values())
    found = conn.execute("SELECT name FROM pg_prepared_statements WHERE name = ANY(%s)", [names])
    have = {row[0] for row in found}
    missing = [_STATEMENTS[query][0] for query, name in _NAMES.items() if name not in have]
    if missing:
        conn.execute("; ".join(missing), prepare=False)
    _READY.add(conn)


def _execute(cursor: Any, query: str, arguments: Any) -> str:
    return cursor.mogrify(_STATEMENTS[query][1], arguments)
