"""A PostgreSQL reservation sent now and read later: the sync client's early start.

:meth:`PostgresLedger.start_reservation` sends a reservation's pipeline (the one a lone
reservation runs, :mod:`.postgres_lone`) on a connection borrowed from the pool and
returns at once; :meth:`PendingReservation.result` reads the answer and makes the same
budget check after the commit as :meth:`PostgresLedger.write` (a refusal withdraws the
row and raises). Between the two the caller builds its request: the round trip and the
server's work overlap that instead of adding to it (:mod:`leadfactory.llm.deferred`
reads the answer just before the request's first byte is sent).

What PostgreSQL decides does not change, only when the client reads it. A failure that
aborted the transaction (a serialization failure or a deadlock PostgreSQL asks to run
again, statements gone from the connection) runs the reservation again through
:meth:`PostgresLedger.write`. Any other failure is the ledger's
:class:`~leadfactory.llm.exceptions.LLMLedgerUnavailableError`: a connection that broke
after the pipeline left may have committed the row, which must not be written twice;
it stays pending until the stale period, as a call in flight when a host dies.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..exceptions import LLMLedgerUnavailableError
from . import postgres_schema as sql
from .budget import Reservation
from .postgres_lone import aborted, read_alone, send_alone
from .postgres_pool import RETRY_STATES
from .postgres_writes import alone, checked, read_after
from .writes import Reserve

if TYPE_CHECKING:
    from .postgres import PostgresLedger

__all__ = ["PendingReservation", "start_reservation"]


def start_reservation(ledger: PostgresLedger, write: Reserve) -> PendingReservation | None:
    """``write`` sent to the server, its answer read by :meth:`PendingReservation.result`
    (which must be called: it gives the connection back); None when it cannot be sent
    now (no free connection, the schema not checked yet, a write refused before it is
    sent): :meth:`PostgresLedger.write` then does it all."""
    import psycopg

    try:
        checked(write)
    except Exception:  # refused or invalid: write() raises it
        return None
    conn = ledger._db.borrow()
    if conn is None:
        return None
    now = ledger._now()
    statement = alone(write, now)
    assert statement is not None  # (a reservation always has one)
    follow = read_after(write, now, ledger._alerted, ledger._spend_window)
    try:
        send_alone(conn, sql.RESERVE_LOCK, statement, follow)
    except psycopg.Error:  # nothing was sent (the connection is closed): write() retries
        ledger._db.give_back(conn)
        return None
    return PendingReservation(ledger, write, now, conn, follow is not None)


class PendingReservation:
    """A reservation on its way: :meth:`result` is the :class:`Reservation` (or raises
    what :meth:`PostgresLedger.write` raises)."""

    def __init__(
        self, ledger: PostgresLedger, write: Reserve, now: datetime, conn: Any, follow: bool
    ) -> None:
        self._ledger, self._write, self._now = ledger, write, now
        self._conn: Any = conn
        self._follow = follow
        self._value: Reservation | None = None
        self._error: BaseException | None = None

    def __repr__(self) -> str:
        state = "sent" if self._conn is not None else "read"
        return f"PendingReservation({self._write.request_id!r}, {state})"

    def result(self) -> Reservation:
        """The reservation, read once (later calls give the same answer)."""
        if self._conn is not None:
            try:
                self._read()
            except BaseException:  # interrupted: its row, if written, counts until stale
                self._error = LLMLedgerUnavailableError(
                    f"the reservation's answer from the PostgreSQL ledger at"
                    f" {self._ledger.url} was not read (interrupted)"
                )
                raise
        if self._error is not None:
            raise self._error
        assert self._value is not None
        return self._value

    def _read(self) -> None:
        import psycopg

        conn, self._conn = self._conn, None
        db = self._ledger._db
        try:
            try:
                rows, read = read_alone(conn, self._follow)
            finally:
                if not conn.closed and aborted(conn):
                    conn.rollback()  # (a write the server refused: nothing was written)
                db.give_back(conn)
        except psycopg.errors.InvalidSqlStatementName:
            self._again()  # its transaction was aborted: run it again, preparing first
            return
        except psycopg.Error as exc:
            if exc.sqlstate in RETRY_STATES:  # aborted: nothing was written
                self._again()
            else:  # (a broken connection: its row, if written, is pending until stale)
                self._error = db.unavailable(exc)
            return
        try:
            self._value = self._ledger._after_commit(self._write, rows[0][0], self._now, True, read)
        except Exception as exc:  # a refusal (the row withdrawn), or the ledger down
            self._error = exc

    def _again(self) -> None:
        try:
            self._value = self._ledger.write(self._write)
        except Exception as exc:
            self._error = exc
