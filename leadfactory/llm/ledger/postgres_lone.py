"""A lone ledger write in one round trip, on statements each connection prepares once.

The write of one reservation, settlement, release or cache hit is one simple query:
BEGIN; ``EXECUTE`` of the lock; ``EXECUTE`` of the write with its totals; COMMIT; and
the read that must follow the commit (the budget check, the running totals for alerts),
also an ``EXECUTE``. The statements are prepared (SQL ``PREPARE``) on each connection the first
time it writes alone, so the server parses and plans them once per connection instead
of on every call: that planning was most of a write's server time (a reservation with
its budget read took 0.54-0.66 ms of server CPU unprepared, 0.13-0.2 ms prepared, on
this project's machines). A connection whose statements are gone (a ``DEALLOCATE ALL``)
prepares the missing ones and runs the write again, once: the error aborted its
transaction, so nothing was written. A pooler in transaction mode, whose server
connections do not follow a client's session, is not supported (docs/scaling.md).

The query goes to libpq directly (``pgconn.send_query``, waited on by psycopg's own
``Connection.wait`` and ``generators.execute``, rows loaded by its ``Transformer``) and
its ``EXECUTE`` arguments are written as SQL literals here (strings escaped by libpq's
``PQescapeLiteral``; other types than None, bool, int, float, str and datetime by
psycopg's ``ClientCursor.mogrify``): a cursor's execute, mogrify and result sets took
most of a write's client CPU (0.17-0.23 ms of 0.27-0.35 in a client call, measured
2026-12-06). ``psycopg.generators`` is not documented API: it is used here only.
"""

from __future__ import annotations

import functools
import math
import re
import weakref
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from . import postgres_schema as sql

__all__ = ["write_alone"]

# The statements a lone write runs, by their text in postgres_schema, and their names.
_NAMES = {
    sql.RESERVE_LOCK: "lf_ledger_reserve_lock",
    sql.WRITE_LOCK: "lf_ledger_write_lock",
    sql.INSERT_ONE: "lf_ledger_insert_one",
    sql.SETTLE_ONE: "lf_ledger_settle_one",
    sql.BUDGET_SPEND: "lf_ledger_budget_spend",
    sql.RUNNING_TOTALS: "lf_ledger_running_totals",
}
_PLACEHOLDER = re.compile(r"%\((\w+)\)s|%s|%%")


def _prepared(name: str, query: str) -> tuple[str, str, list[str | None]]:
    """``PREPARE name AS ...`` for ``query`` (psycopg placeholders become ``$n``, a
    named one the same ``$n`` each time), the ``EXECUTE name(`` that starts a call of it
    and the arguments of ``query`` that fill it, in order (a name, or None: the next
    positional one)."""
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
    return f"PREPARE {name} AS {body}", f"EXECUTE {name}" + ("(" if order else ""), order


_STATEMENTS = {query: _prepared(name, query) for query, name in _NAMES.items()}
_READY: weakref.WeakSet[Any] = weakref.WeakSet()  # connections that prepared them


def write_alone(
    conn: Any, lock: str, statement: tuple[str, Any], follow: tuple[str, Any] | None
) -> tuple[list[Any], list[Any] | None]:
    """Run ``statement`` (its query and arguments) in a transaction of its own after
    ``lock``, then ``follow`` after the COMMIT, as one query: its own snapshot, which
    sees the write. Returns the rows the write returned and those ``follow`` read."""
    pg = _driver()
    encoding = conn.info.encoding
    escape = pg.Escaping(conn.pgconn).escape_literal
    lock = _STATEMENTS[lock][1] if lock in _STATEMENTS else lock  # EXECUTE of the lock
    parts = ["BEGIN", lock, _execute(conn, escape, encoding, *statement), "COMMIT"]
    if follow is not None:
        parts.append(_execute(conn, escape, encoding, *follow))
    text = "; ".join(parts).encode(encoding)
    for attempt in (1, 2):
        if conn not in _READY:
            _prepare(conn)
        try:
            results = _run(conn, pg, text, encoding)
            break
        except pg.errors.InvalidSqlStatementName:
            _READY.discard(conn)
            if attempt == 2 or conn.info.transaction_status != pg.TransactionStatus.INERROR:
                raise  # not in the aborted transaction: the write may have committed
            conn.rollback()
    # results: BEGIN, the lock, the write, COMMIT, the read
    loader = pg.Transformer(conn)
    return _rows(loader, results[2]), _rows(loader, results[4]) if follow is not None else None


@functools.cache
def _driver() -> SimpleNamespace:
    """The parts of psycopg a lone write uses, imported once (on first use: the core
    install has no psycopg)."""
    from psycopg import ClientCursor, errors, generators
    from psycopg.adapt import Transformer
    from psycopg.pq import Escaping, ExecStatus, TransactionStatus

    return SimpleNamespace(
        ClientCursor=ClientCursor,
        errors=errors,
        generators=generators,
        Transformer=Transformer,
        Escaping=Escaping,
        FATAL_ERROR=ExecStatus.FATAL_ERROR,
        TransactionStatus=TransactionStatus,
    )


def _run(conn: Any, pg: SimpleNamespace, text: bytes, encoding: str) -> list[Any]:
    """The results of the simple query ``text``; the first error in them raised as
    psycopg raises it."""
    pgconn = conn.pgconn
    pgconn.send_query(text)
    results = conn.wait(pg.generators.execute(pgconn))
    for result in results:
        if result.status == pg.FATAL_ERROR:
            raise pg.errors.error_from_result(result, encoding=encoding)
    return results


def _rows(loader: Any, result: Any) -> list[Any]:
    loader.set_pgresult(result)
    return loader.load_rows(0, result.ntuples, tuple)


def _prepare(conn: Any) -> None:
    """Prepare on ``conn`` those of the statements it does not have."""
    names = list(_NAMES.values())
    found = conn.execute("SELECT name FROM pg_prepared_statements WHERE name = ANY(%s)", [names])
    have = {row[0] for row in found}
    missing = [_STATEMENTS[query][0] for query, name in _NAMES.items() if name not in have]
    if missing:
        conn.execute("; ".join(missing), prepare=False)
    _READY.add(conn)


def _execute(conn: Any, escape: Any, encoding: str, query: str, arguments: Any) -> str:
    """``EXECUTE`` of ``query``'s prepared statement with ``arguments`` as literals
    (strings quoted by ``escape``, libpq's for ``conn``)."""
    _, start, order = _STATEMENTS[query]
    values = [arguments[key] for key in order] if isinstance(arguments, dict) else arguments
    literals = []
    for value in values:
        kind = type(value)
        if value is None:
            literals.append("NULL")
        elif kind is str and "\x00" not in value:
            literals.append(escape(value.encode(encoding)).decode(encoding))
        elif kind is int:
            literals.append(str(value))
        elif kind is float:
            literals.append(repr(value) if math.isfinite(value) else f"'{value!r}'")
        elif kind is bool:
            literals.append("true" if value else "false")
        elif kind is datetime and value.tzinfo is not None:
            literals.append(f"'{value.isoformat()}'")
        else:  # anything else, as psycopg would write it
            literals.append(_driver().ClientCursor(conn).mogrify("%s", [value]))
    return start + ", ".join(literals) + ")"
