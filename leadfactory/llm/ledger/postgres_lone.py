"""A lone ledger write in one round trip, on statements each connection prepares once.

The write of one reservation, settlement, release or cache hit is one pipeline (libpq's
pipeline mode, one sync): BEGIN; the lock; the write with its totals; COMMIT; and the
read that must follow the commit (the budget check, the running totals for alerts). The
lock, the write and the read are prepared statements (SQL ``PREPARE``, on each
connection the first time it writes alone), run by protocol-level Bind/Execute with
their arguments as text parameters, so the server parses and plans them once per
connection instead of on every call: that planning was most of a write's server time (a
reservation with its budget read took 0.54-0.66 ms of server CPU unprepared, 0.13-0.2
ms prepared, on this project's machines). A connection whose statements are gone (a
``DEALLOCATE ALL``) prepares the missing ones and runs the write again, once: the error
aborted its transaction, so nothing was written. A pooler in transaction mode, whose
server connections do not follow a client's session, is not supported
(docs/scaling.md).

The pipeline goes to libpq directly (``pgconn.send_query_prepared``, waited on by
psycopg's own ``Connection.wait`` with ``generators.send`` and ``generators.fetch_many``,
rows loaded by its ``Transformer``), arguments written as text here (types other than
None, bool, int, float, str and datetime by psycopg's dumpers): a cursor's execute and
result sets took most of a write's client CPU (0.17-0.23 ms of 0.27-0.35 in a client
call, measured 2026-12-06), and ``EXECUTE`` statements with SQL literals, sent as one
simple query before, cost the server their parsing and analysis on every write (0.03-0.14
ms more backend CPU per reservation and its settlement together, measured the same day).
``psycopg.generators`` is not documented API: it is used here only.
"""

from __future__ import annotations

import functools
import re
import weakref
from collections.abc import Generator
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from . import postgres_schema as sql

__all__ = ["aborted", "read_alone", "send_alone", "write_alone"]

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


def _prepared(name: str, query: str) -> tuple[str, bytes, list[str | None]]:
    """``PREPARE name AS ...`` for ``query`` (psycopg placeholders become ``$n``, a
    named one the same ``$n`` each time), the statement's name as libpq takes it, and the
    arguments of ``query`` that fill it, in order (a name, or None: the next positional
    one)."""
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
    return f"PREPARE {name} AS {body}", name.encode(), order


_STATEMENTS = {query: _prepared(name, query) for query, name in _NAMES.items()}
_READY: weakref.WeakSet[Any] = weakref.WeakSet()  # connections that prepared them


def write_alone(
    conn: Any, lock: str, statement: tuple[str, Any], follow: tuple[str, Any] | None
) -> tuple[list[Any], list[Any] | None]:
    """Run ``statement`` (its query and arguments) in a transaction of its own after
    ``lock``, then ``follow`` after the COMMIT, in one pipeline: its own snapshot, which
    sees the write. Returns the rows the write returned and those ``follow`` read."""
    pg = _driver()
    for attempt in (1, 2):
        if conn not in _READY:
            _prepare(conn)
        try:
            results = _pipelined(conn, pg, _queries(lock, statement, follow))
            break
        except pg.errors.InvalidSqlStatementName:
            _READY.discard(conn)
            if attempt == 2 or not aborted(conn):
                raise  # not in the aborted transaction: the write may have committed
            conn.rollback()
    return _loaded(conn, pg, results, follow)


def send_alone(
    conn: Any, lock: str, statement: tuple[str, Any], follow: tuple[str, Any] | None
) -> None:
    """The first half of :func:`write_alone`: its pipeline sent, nothing read; the
    connection must go to :func:`read_alone` before anything else uses it."""
    if conn not in _READY:
        _prepare(conn)
    sent(conn, _driver(), _queries(lock, statement, follow))


def read_alone(conn: Any, follow: bool) -> tuple[list[Any], list[Any] | None]:
    """The second half of :func:`write_alone` (``follow``: whether a read was sent);
    statements gone from the connection raise as there, without a second try."""
    pg = _driver()
    try:
        results = received(conn, pg)
    except pg.errors.InvalidSqlStatementName:
        _READY.discard(conn)
        raise
    return _loaded(conn, pg, results, (None, None) if follow else None)


def aborted(conn: Any) -> bool:
    """Whether ``conn`` is in a transaction an error aborted (nothing of it was written)."""
    return bool(conn.info.transaction_status == _driver().TransactionStatus.INERROR)


def _queries(
    lock: str, statement: tuple[str, Any], follow: tuple[str, Any] | None
) -> list[tuple[str, Any]]:
    return [("BEGIN", None), (lock, ()), statement, ("COMMIT", None), *([follow] if follow else [])]


def _loaded(
    conn: Any, pg: SimpleNamespace, results: list[Any], follow: object
) -> tuple[list[Any], list[Any] | None]:
    """The rows of the write and of the read after it: results of BEGIN, the lock, the
    write, COMMIT and the read."""
    loader = pg.Transformer(conn)
    return _rows(loader, results[2]), _rows(loader, results[4]) if follow is not None else None


@functools.cache
def _driver() -> SimpleNamespace:
    """The parts of psycopg a lone write uses, imported once (on first use: the core
    install has no psycopg)."""
    from psycopg import errors, generators
    from psycopg.adapt import PyFormat, Transformer
    from psycopg.pq import ExecStatus, TransactionStatus

    return SimpleNamespace(
        errors=errors,
        generators=generators,
        Transformer=Transformer,
        TEXT=PyFormat.TEXT,
        FATAL_ERROR=ExecStatus.FATAL_ERROR,
        PIPELINE_SYNC=ExecStatus.PIPELINE_SYNC,
        TransactionStatus=TransactionStatus,
    )


def _pipelined(conn: Any, pg: SimpleNamespace, queries: list[tuple[str, Any]]) -> list[Any]:
    """The result of each of ``queries`` (a prepared statement's query and its
    arguments, or a statement without any), sent in libpq's pipeline mode and read up to
    its sync; the first error among them raised as psycopg raises it. A connection
    interrupted mid-exchange is closed (the pool replaces it; its transaction rolls back)."""
    sent(conn, pg, queries)
    return received(conn, pg)


def sent(conn: Any, pg: SimpleNamespace, queries: list[tuple[str, Any]]) -> None:
    """``queries`` written to the server in libpq's pipeline mode, up to its sync, with
    nothing read yet: :func:`received` reads their results."""
    pgconn, encoding = conn.pgconn, conn.info.encoding
    sends = []  # every argument written out before anything is sent
    for query, arguments in queries:
        if query in _STATEMENTS:
            _, name, order = _STATEMENTS[query]
            sends.append((name, _parameters(conn, encoding, order, arguments)))
        else:
            sends.append((query.encode(encoding), None))
    pgconn.enter_pipeline_mode()
    try:
        for name, parameters in sends:
            if parameters is None:
                pgconn.send_query_params(name, None)
            else:
                pgconn.send_query_prepared(name, parameters)
        pgconn.pipeline_sync()
        conn.wait(pg.generators.send(pgconn))
    except BaseException:
        conn.close()
        raise


def received(conn: Any, pg: SimpleNamespace) -> list[Any]:
    """The results of what :func:`sent` wrote, read up to the sync (see :func:`_pipelined`)."""
    pgconn = conn.pgconn
    try:
        results = conn.wait(_results(pgconn, pg))
    except BaseException:
        conn.close()
        raise
    pgconn.exit_pipeline_mode()
    for result in results:
        if result.status == pg.FATAL_ERROR:
            raise pg.errors.error_from_result(result, encoding=conn.info.encoding)
    return results


def _results(pgconn: Any, pg: SimpleNamespace) -> Generator[Any, Any, list[Any]]:
    """psycopg's generator reading each query's results, then the sync's, as one."""
    results: list[Any] = []
    while True:
        got = yield from pg.generators.fetch_many(pgconn)
        if got and got[0].status == pg.PIPELINE_SYNC:
            return results
        results.extend(got)


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


def _parameters(
    conn: Any, encoding: str, order: list[str | None], arguments: Any
) -> list[bytes | None]:
    """``arguments`` in the statement's order, as the text PostgreSQL reads for each
    parameter (types other than None, bool, int, float, str and datetime by psycopg's
    dumpers, which also refuse a NUL in a string)."""
    values = [arguments[key] for key in order] if isinstance(arguments, dict) else arguments
    texts: list[bytes | None] = []
    for value in values:
        kind = type(value)
        if value is None:
            texts.append(None)
        elif kind is str and "\x00" not in value:
            texts.append(value.encode(encoding))
        elif kind is int or kind is float:
            texts.append(repr(value).encode())
        elif kind is bool:
            texts.append(b"true" if value else b"false")
        elif kind is datetime and value.tzinfo is not None:
            texts.append(value.isoformat().encode())
        else:  # anything else, as psycopg would send it
            dumper = _driver().Transformer(conn).get_dumper(value, _driver().TEXT)
            texts.append(bytes(dumper.dump(value)))
    return texts
