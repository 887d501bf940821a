"""The cost ledger on PostgreSQL (``LLM_LEDGER_URL``): one budget for every host.

Same public methods and semantics as :class:`~leadfactory.llm.ledger.CostLedger`;
only the storage differs (schema and statements in :mod:`.postgres_schema`). psycopg 3
and psycopg_pool are imported when the first ledger of this kind is opened.

A reservation is inserted and committed first, then checked: the budget read after the
commit sees every reservation committed before it, its own included, and the request
is refused (its row deleted) when the spend passes a limit. Of two hosts reserving at
once, the later check sees both, so admitted requests never pass a limit together;
near a limit, two requests that would each fit alone may both be refused. No write
takes a lock row that another holds in a different order; PostgreSQL's requests to
retry (serialization failure 40001, deadlock 40P01) are retried here.

Durable commits: a transaction of reservations commits without waiting for the disk
flush (``synchronous_commit`` off for it alone): it is visible to every host at once,
so the budget check is as strict, and the WAL holds it before any later commit, so the
settlement's commit, which waits for the flush as every other write does, makes both
durable. A server crash in between may lose the pending row; the settlement then writes
the row again, settled (``postgres_writes``), so the call is still charged. One disk
flush per call instead of two. The client writes settlements in the background by
default (``settle_in_background``, see :mod:`.writer`): the caller waits for the
reservation only.

When the database does not answer within ``timeout`` seconds, paid reservations and
reads raise :class:`LLMLedgerUnavailableError`, so no paid call is made; a free
request (estimate 0) goes on, its row unwritten, with a warning that says so.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import astuple
from datetime import UTC, datetime, timedelta
from typing import Any

from ..exceptions import LLMConfigurationError, LLMLedgerUnavailableError, LLMQuotaExceededError
from ..log import log_event
from . import postgres_schema as sql
from .budget import (
    Budget,
    BudgetAlert,
    Period,
    Reservation,
    Spend,
    alerts_due,
    budget_refusal,
    may_alert,
    period_bounds,
    period_key,
    period_spend,
    settled_and_reserved,
    spend_by_provider,
    summarise_providers,
    unsent_alert_possible,
    utc_iso,
)
from .postgres_lone import write_alone
from .postgres_pending import start_reservation
from .postgres_pool import PostgresConnections
from .postgres_writes import (
    WRITERS,
    add,
    add_to_totals,
    alone,
    checked,
    limited,
    read_after,
    unwritten,
)
from .protocol import Grouping, Ledger
from .sqlite_ledger import CostLedger
from .writer import after_queued_writes
from .writes import LedgerWrite, Reserve, Settle

__all__ = ["PostgresLedger"]


class PostgresLedger(Ledger):
    """The ledger in the PostgreSQL database at ``url`` (see the module docstring).

    ``clock``, ``on_alert`` and ``stale_after`` mean what they mean for
    :class:`~leadfactory.llm.ledger.CostLedger`; ``timeout`` bounds the wait for a
    connection; ``max_connections`` sizes this process's pool.
    """

    path = None

    def __init__(
        self,
        url: str,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        on_alert: Callable[[BudgetAlert], None] | None = None,
        stale_after: float = 600.0,
        settle_in_background: bool = True,
        timeout: float = 5.0,
        max_connections: int = 8,
    ) -> None:
        if stale_after <= 0:
            raise ValueError("stale_after must be a positive number of seconds")
        try:
            import psycopg  # noqa: F401
            import psycopg_pool  # noqa: F401
        except ImportError:
            raise LLMConfigurationError(
                "LLM_LEDGER_URL names a PostgreSQL ledger, which needs psycopg 3 and"
                " psycopg_pool: pip install 'leadfactory-llm[postgres]'"
            ) from None
        self._db = PostgresConnections(
            url, timeout=timeout, max_connections=max_connections, prepare=sql.migrate
        )
        self.url = self._db.public_url
        self._clock, self._on_alert = clock, on_alert
        self._alerted: set[tuple[str, str]] = set()  # (period, key) of alerts known sent
        self._stale_after = timedelta(seconds=stale_after)
        self.settles_in_background = settle_in_background
        self._run = self._db.run

    def __repr__(self) -> str:
        return f"PostgresLedger({self.url!r})"

    announce = CostLedger.announce
    _now = CostLedger._now
    start_reservation = start_reservation  # sent now, read later (see postgres_pending)

    # -- writes (the keyword forms come with the Ledger protocol) -------------------------

    def write(self, write: LedgerWrite) -> Any:
        """Do one write (see :meth:`Ledger.write`)."""
        (result,) = self.run_batch([write])
        if isinstance(result, Exception):
            raise result
        return result

    def run_batch(self, writes: Sequence[LedgerWrite], *, announce: bool = True) -> list[Any]:
        """The writes in one transaction, each result (or exception) at its index, as
        :meth:`CostLedger.run_batch`; reservations are checked after the commit."""
        prepared: list[LedgerWrite | Exception] = []
        for write in writes:
            try:
                prepared.append(checked(write))
            except (TypeError, ValueError, LLMQuotaExceededError) as exc:
                prepared.append(exc)
        now = self._now()
        one = alone(prepared[0], now) if len(prepared) == 1 else None
        reads: list[list[Any] | None] = [None] * len(prepared)  # what followed each commit
        try:
            if one is not None:
                follow = read_after(prepared[0], now, self._alerted, self._spend_window)
                result, reads[0] = self._run(
                    lambda conn: self._write_alone(conn, prepared, now, one, follow)
                )
                written = [result]
            else:
                written = self._run(lambda conn: self._write(conn, prepared, now))
        except LLMLedgerUnavailableError as down:
            return [unwritten(item, down) for item in prepared]
        results = []
        for item, result, read in zip(prepared, written, reads, strict=True):
            if not isinstance(result, Exception):
                try:
                    result = self._after_commit(item, result, now, announce, read)
                except (LLMQuotaExceededError, LLMLedgerUnavailableError) as exc:
                    result = exc
            results.append(result)
        return results

    def reset(self, provider: str | None = None) -> None:
        """From now on budgets count only new rows (of ``provider``, or of all)."""

        def work(conn: Any) -> None:
            with conn.transaction():
                conn.execute(sql.RESET_LOCK)  # waits for the writes in flight
                conn.execute(sql.INSERT_RESET, [self._now(), provider])
                conn.execute(sql.CLEAR_TOTALS, {"provider": provider})

        self._run(work)
        log_event(logging.INFO, f"cost tracking reset for {provider or 'all providers'}")

    # -- reads ----------------------------------------------------------------------------

    @after_queued_writes
    def check(self, *, provider: str, estimated_usd: float, budget: Budget) -> None:
        """Raise as :meth:`reserve` would, without writing anything."""
        now = self._now()
        spent = self._spent_total(now) if estimated_usd > 0 else (0.0, 0.0)
        refusal = budget_refusal(
            budget, provider=provider, estimated_usd=estimated_usd, spent=spent, now=now
        )
        if refusal is not None:
            raise refusal

    @after_queued_writes
    def spend(self, *, period: Period = "day", provider: str | None = None) -> float:
        """Spend in the current period as the budgets count it (since the applicable reset)."""
        return period_spend(
            lambda: self._run(lambda conn: self._spent(conn, self._now())), period, provider
        )

    @after_queued_writes
    def provider_summary(self) -> dict[str, dict[str, Any]]:
        """Per provider with rows counted this month: budget-counted costs, today's counts."""

        def work(conn: Any) -> dict[str, dict[str, Any]]:
            now = self._now()
            start, end = period_bounds(now, "day")
            counts = conn.execute(sql.COUNTS_TODAY, {"day_start": start, "day_end": end})
            today = {row[0]: row[1:] for row in counts}
            return summarise_providers(self._spent(conn, now), today)

        return self._run(work)

    @after_queued_writes
    def alerts(self) -> list[BudgetAlert]:
        """Every alert sent, oldest first."""
        rows = self._run(lambda c: c.execute(sql.ALERTS).fetchall())
        return [BudgetAlert(*row) for row in rows]

    @after_queued_writes
    def rows(self, *, since: datetime | None = None, limit: int | None = None) -> list[dict]:
        """``calls`` rows from ``since`` on, oldest first; with ``limit``, the newest ones."""
        from psycopg.rows import dict_row

        where, args = ("WHERE ts >= %s", [since]) if since else ("", [])
        query = f"SELECT * FROM calls {where} ORDER BY id DESC LIMIT %s"

        def work(conn: Any) -> list[dict]:
            with conn.cursor(row_factory=dict_row) as cursor:
                return cursor.execute(query, [*args, limit]).fetchall()

        rows = self._run(work)
        return [{**row, "ts": utc_iso(row["ts"])} for row in reversed(rows)]

    @after_queued_writes
    def totals(self, *, by: Grouping = "day", since: datetime | None = None) -> list[dict]:
        """Settled rows summed per day, month, provider, model or caller (:meth:`Ledger.totals`)."""
        from psycopg.rows import dict_row

        if by not in sql.COST_GROUPS:
            raise ValueError(f"by must be one of {', '.join(sql.COST_GROUPS)}, not {by!r}")

        def work(conn: Any) -> list[dict[str, Any]]:
            with conn.cursor(row_factory=dict_row) as cursor:
                return cursor.execute(sql.costs_query(by), {"since": since}).fetchall()

        return self._run(work)

    def ping(self) -> None:
        """Raise :class:`LLMLedgerUnavailableError` unless the database answers."""
        self._run(lambda conn: conn.execute("SELECT 1").fetchone())

    # -- lifetime -------------------------------------------------------------------------

    @after_queued_writes
    def close(self) -> None:
        """Close this process's connections (a later call opens new ones), once the
        writes queued for them are done."""
        self._db.close()

    # -- internals ------------------------------------------------------------------------

    def _write(self, conn: Any, prepared: list, now: datetime) -> list[Any]:
        """Every write of a batch in one transaction; totals added in one sorted upsert."""
        deltas: Counter[tuple[str, str, str]] = Counter()
        results: list[Any] = []
        reserving = all(isinstance(item, Reserve | Exception) for item in prepared)
        with conn.transaction():
            conn.execute(sql.RESERVE_LOCK if reserving else sql.WRITE_LOCK)
            for item in prepared:
                if isinstance(item, Exception):
                    results.append(item)
                    continue
                try:
                    results.append(WRITERS[type(item)](conn, item, now, deltas))
                except ValueError as exc:
                    results.append(exc)
            add_to_totals(conn, deltas)
        return results

    def _write_alone(
        self,
        conn: Any,
        prepared: list,
        now: datetime,
        statement: tuple[str, tuple[Any, ...]],
        follow: tuple[str, dict[str, Any]] | None,
    ) -> tuple[Any, list[Any] | None]:
        """One write in one round trip (:func:`.postgres_lone.write_alone`); returns its
        result and the rows of ``follow``, the read after the commit. A settlement that
        finds no pending row takes the batch path (which writes a lost row again, or
        raises)."""
        (item,) = prepared
        lock = sql.RESERVE_LOCK if isinstance(item, Reserve) else sql.WRITE_LOCK
        rows, read = write_alone(conn, lock, statement, follow)
        if isinstance(item, Reserve):
            return rows[0][0], read
        if isinstance(item, Settle) and not rows:
            return self._write(conn, prepared, now)[0], None
        return isinstance(item, Settle) or None, read

    def _after_commit(
        self, write: LedgerWrite, result: Any, now: datetime, announce: bool, read: Any = None
    ) -> Any:
        """A reservation's budget check (withdrawn if refused); a settlement's alerts.
        ``read``: the rows of the read that followed the commit (None: read them now)."""
        if isinstance(write, Reserve):
            return self._check_reservation(write, result, now, read)
        budget = write.reservation.budget if isinstance(write, Settle) else None
        if (
            budget is None
            or not result
            or not may_alert(budget, write.cost_usd, now=now, sent=self._alerted)
        ):
            return [] if isinstance(write, Settle) and not announce else None
        fired = self._send_alerts(budget, now, read[0] if read else None)
        if not announce:
            return fired
        for alert in fired:
            self.announce(alert)
        return None

    def _check_reservation(
        self, w: Reserve, row_id: int, now: datetime, read: list[Any] | None
    ) -> Reservation:
        spent = None
        if w.estimated_usd > 0 and limited(w.budget):
            day, month = self._spent_total(now) if read is None else spend_by_provider(read)[None]
            spent = (max(day - w.estimated_usd, 0.0), max(month - w.estimated_usd, 0.0))
            refusal = budget_refusal(
                w.budget, provider=w.provider, estimated_usd=w.estimated_usd, spent=spent, now=now
            )
            if refusal is not None:
                self._run(lambda conn: self._withdraw(conn, row_id))
                raise refusal
        return Reservation(row_id, w.request_id, w.provider, w.estimated_usd, w.budget, spent)

    def _withdraw(self, conn: Any, row_id: int) -> None:
        deltas: Counter[tuple[str, str, str]] = Counter()
        with conn.transaction():
            conn.execute(sql.RESERVE_LOCK)  # lost in a crash, the row stays pending: refused
            for ts, provider, amount, counted in conn.execute(sql.WITHDRAW_CALL, [row_id]):
                if counted:
                    add(deltas, ts, provider, amount)
            add_to_totals(conn, deltas)

    def _send_alerts(
        self, budget: Budget, now: datetime, counted: Sequence[Any] | None = None
    ) -> list[BudgetAlert]:
        """The alerts due now that no host has sent yet: this call sends them.
        ``counted``: RUNNING_TOTALS's row, read after the settlement (None: read here)."""
        window = self._spend_window(now)
        if counted is not None and not unsent_alert_possible(
            budget, counted, now=now, sent=self._alerted
        ):
            return []  # the usual case, with no round trip of its own

        def read(conn: Any) -> tuple[Spend, Spend] | None:
            counted = conn.execute(sql.RUNNING_TOTALS, window).fetchone()
            if not unsent_alert_possible(budget, counted, now=now, sent=self._alerted):
                return None  # even counting what is reserved, no threshold is reached
            pending = conn.execute(sql.PENDING_SUMS, window).fetchone()
            return settled_and_reserved(counted, pending[:2], pending[2:])

        spend = self._run(read)
        if spend is None:
            return []
        due = alerts_due(budget, spent=spend[0], reserved=spend[1], now=now)

        def work(conn: Any) -> list[BudgetAlert]:
            return [
                alert
                for alert in due  # ON CONFLICT DO NOTHING: the first host's insert sends it
                if conn.execute(sql.INSERT_ALERT, (now, *astuple(alert))).fetchone()
            ]

        fired = self._run(work) if due else []
        self._alerted.update((alert.period, alert.period_key) for alert in due)
        return fired

    def _spent(self, conn: Any, now: datetime) -> dict[str | None, Spend]:
        """(day, month) spend per provider as budgets count it; the key None is the total."""
        return spend_by_provider(conn.execute(sql.BUDGET_SPEND, self._spend_window(now)))

    def _spent_total(self, now: datetime) -> Spend:
        return self._run(lambda conn: self._spent(conn, now))[None]

    def _spend_window(self, now: datetime) -> dict[str, Any]:
        return {
            "day": period_key(now, "day"),
            "month": period_key(now, "month"),
            "day_start": period_bounds(now, "day")[0],
            "month_start": period_bounds(now, "month")[0],
            "cutoff": now - self._stale_after,
        }
