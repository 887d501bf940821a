"""The SQLite ledger: budgets, reservations and alerts on one file (schema in .schema).

:meth:`CostLedger.reserve` checks the budgets and writes a ``pending`` row holding the
estimate in one statement, under the file's write lock (.admission), so concurrent
workers cannot overspend together; :meth:`CostLedger.settle` replaces the estimate with
the real cost. Budgets count ``cost_usd + reserved_usd`` per UTC day and month since the
latest reset that applies to each provider, ignoring reservations pending for longer than
``stale_after``.
Every thread and process of a pipeline may share one ledger file.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import sys
from collections.abc import Callable, Sequence
from dataclasses import astuple
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from ..exceptions import LLMConfigurationError, LLMError, LLMQuotaExceededError
from ..log import log_event
from . import statements as sql
from .admission import Admission
from .budget import (
    NANOS_PER_USD,
    Budget,
    BudgetAlert,
    Period,
    Reservation,
    Spend,
    alerts_due,
    budget_refusal,
    may_alert,
    period_bounds,
    period_spend,
    settled_and_reserved,
    spend_by_provider,
    summarise_providers,
    unsent_alert_possible,
    usd_text,
    utc_iso,
)
from .protocol import GROUPINGS, Grouping, Ledger
from .schema import open_ledger_file
from .sqlite_work import Runner, Work
from .writer import after_queued_writes
from .writes import NOTHING_BILLED, CacheHit, LedgerWrite, Release, Reserve, Settle, check_write

__all__ = ["CostLedger"]

T = TypeVar("T")


class CostLedger(Ledger):
    """The ledger file at ``path``: reserve and settle around each provider call.

    ``clock`` returns an aware datetime (now, UTC, by default); ``on_alert`` is called once
    per alert; reservations pending for over ``stale_after`` seconds stop counting; waits
    for other writers give up with :class:`LedgerBusyError` after ``busy_timeout`` seconds.
    ``read_only``: for reports; nothing is created or changed (a missing file reads as an
    empty ledger) and writes raise LLMError. A path that cannot serve (a folder, a damaged
    or foreign file) raises LLMConfigurationError naming it.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        on_alert: Callable[[BudgetAlert], None] | None = None,
        stale_after: float = 600.0,
        settle_in_background: bool = False,
        busy_timeout: float = 30.0,
        read_only: bool = False,
    ) -> None:
        if stale_after <= 0:
            raise ValueError("stale_after must be a positive number of seconds")
        self.path = Path(path)
        self._clock, self._on_alert = clock, on_alert
        self._alerted: set[tuple[str, str]] = set()  # (period, key) of alerts known sent
        self._stale_after = timedelta(seconds=stale_after)
        self.settles_in_background = settle_in_background
        self.read_only = read_only
        self._file = open_ledger_file(self.path, busy_timeout=busy_timeout, read_only=read_only)
        self._transaction = self._file.transaction
        self._admission = Admission()  # the budget check inside a reservation's INSERT

    @staticmethod
    def default_path() -> Path:
        """``$LLM_LEDGER_PATH``, else ``leadfactory-llm/ledger.db`` in the user's data dir."""
        explicit = os.environ.get("LLM_LEDGER_PATH")
        if explicit is not None and not explicit.strip():
            raise LLMConfigurationError(
                "LLM_LEDGER_PATH is empty: unset it to use the default ledger, or give a file path"
            )
        if explicit:
            return Path(explicit).expanduser()
        if sys.platform == "darwin":
            base = Path.home() / "Library" / "Application Support"
        elif sys.platform == "win32" and os.environ.get("LOCALAPPDATA"):
            base = Path(os.environ["LOCALAPPDATA"])
        else:
            base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
        return base / "leadfactory-llm" / "ledger.db"

    def write(self, write: LedgerWrite) -> Any:
        """Do one write in its own transaction (see :meth:`Ledger.write`)."""
        self._check_writable()
        return self._work(write).run(self._transaction)

    def run_batch(self, writes: Sequence[LedgerWrite], *, announce: bool = True) -> list[Any]:
        """Several writes in one transaction (see :meth:`Ledger.run_batch`).

        Each behaves as :meth:`write` would: its result, or the exception it raises, is at
        its index (a refusal writes nothing and spoils nothing else). One COMMIT for the
        lot: the async client's writer thread groups concurrent requests' writes this way.
        """
        self._check_writable()
        prepared: list[Work | Exception] = []
        for write in writes:
            try:
                prepared.append(self._work(write))
            except (TypeError, ValueError) as exc:
                prepared.append(exc)

        def work(conn: sqlite3.Connection) -> list[Any]:
            results: list[Any] = []
            for item in prepared:
                if isinstance(item, Exception):
                    results.append(item)
                    continue
                try:  # each refusal or bad settlement raises before it writes
                    results.append(item.run_in(conn))
                except (LLMQuotaExceededError, ValueError) as exc:
                    results.append(exc)
            return results

        results = self._transaction(work)
        return [
            result
            if isinstance(item, Exception) or isinstance(result, Exception) or not announce
            else item.finish(result)
            for item, result in zip(prepared, results, strict=True)
        ]

    def _work(self, write: LedgerWrite) -> Work:
        """The SQL of ``write``, checked first (TypeError, ValueError)."""
        check_write(write)
        match write:
            case Reserve():
                return self._reserve_work(write)
            case Settle():
                return self._settle_work(write)
            case Release():
                return self._release_work(write)
            case CacheHit():
                return self._cache_hit_work(write)
        raise AssertionError(write)  # check_write lets only the four kinds through

    def _reserve_work(self, w: Reserve) -> Work:
        row = {"request_id": w.request_id, "provider": w.provider, "model": w.model}
        row.update(strategy=w.strategy, estimate=w.estimated_usd, caller=w.caller)

        def write(conn: sqlite3.Connection) -> Reservation:
            now = self._now()
            row["ts"] = utc_iso(now)
            if w.estimated_usd <= 0:  # free: never refused, no need to read the spend
                row_id, spent = conn.execute(sql.RESERVE_FREE, row).lastrowid, None
            else:  # one statement: checked against the spend under the write lock
                row.update(self._spend_window(now))
                row_id = self._admission.insert(conn, sql.RESERVE_CALL, row, w, now)
                if row_id is None:
                    raise self._admission.refusal or AssertionError("refused without a reason")
                spent = self._admission.spent
            return Reservation(row_id, w.request_id, w.provider, w.estimated_usd, w.budget, spent)

        return Work(write, alone=True)

    def _settle_work(self, w: Settle) -> Work:
        reservation, budget = w.reservation, w.reservation.budget
        tokens = (w.prompt_tokens, w.completion_tokens, w.prompt_tokens + w.completion_tokens)
        args = (w.outcome, w.cost_usd, *tokens, w.latency_ms, w.error_class, w.model)
        args += (int(bool(w.estimated)), *w.billed().values(), reservation.row_id)
        now = self._now()
        alert_possible = budget is not None and may_alert(
            budget, w.cost_usd, now=now, sent=self._alerted
        )

        def write(conn: sqlite3.Connection) -> list[BudgetAlert]:
            if conn.execute(sql.SETTLE_CALL, args).rowcount != 1:
                raise ValueError(f"ledger row {reservation.row_id} is not a pending reservation")
            return []

        def counted(conn: sqlite3.Connection) -> Any:
            return conn.execute(sql.RUNNING_TOTALS, self._spend_window(now)).fetchone()

        def possible(conn: sqlite3.Connection) -> bool:
            # even counting what is reserved, is a threshold without an alert reached?
            return unsent_alert_possible(budget, counted(conn), now=now, sent=self._alerted)

        def due(conn: sqlite3.Connection) -> list[BudgetAlert]:
            totals = counted(conn)
            if not unsent_alert_possible(budget, totals, now=now, sent=self._alerted):
                return []
            pending = conn.execute(sql.PENDING_SUMS, self._spend_window(now)).fetchone()
            settled, reserved = settled_and_reserved(totals, pending[:2], pending[2:])
            return alerts_due(budget, spent=settled, reserved=reserved, now=now)

        def send(conn: sqlite3.Connection, alerts: list[BudgetAlert]) -> list[BudgetAlert]:
            fired = []  # INSERT OR IGNORE: only the first writer of a period's alert sends it
            for alert in alerts:
                if conn.execute(sql.INSERT_ALERT, (utc_iso(now), *astuple(alert))).rowcount:
                    fired.append(alert)
                self._alerted.add((alert.period, alert.period_key))  # sent, here or elsewhere
            return fired

        def alerts(run: Runner) -> list[BudgetAlert]:
            # After the settlement's commit, which it sees: the settled spend (a read), and
            # a write only when an alert is due. Of two settlements that cross a threshold
            # together, each sees both; the alerts table keeps one alert per period.
            if not run(possible, single_statement=True, write=False):
                return []  # the usual case: one read of the running totals
            found = run(due, write=False)  # both reads in one snapshot
            return run(lambda conn: send(conn, found)) if found else []

        def announce(fired: list[BudgetAlert]) -> None:
            for alert in fired:  # after COMMIT: no callback holds the lock
                self.announce(alert)

        # The UPDATE alone is the write, atomic without BEGIN/COMMIT.
        return Work(write, announce, alone=True, then=alerts if alert_possible else None)

    def _release_work(self, w: Release) -> Work:
        args = ("error", 0.0, 0, 0, 0, 0.0, w.error_class, None, 0, *NOTHING_BILLED)
        args += (w.reservation.row_id,)

        def write(conn: sqlite3.Connection) -> None:
            conn.execute(sql.SETTLE_CALL, args)  # no row changed: settled already, fine

        return Work(write, alone=True)

    def _cache_hit_work(self, w: CacheHit) -> Work:
        tokens = (w.prompt_tokens, w.completion_tokens, w.prompt_tokens + w.completion_tokens)
        row = (w.request_id, w.provider, w.model, w.strategy, "cache_hit", *tokens)
        tail = (0, w.saved_usd, w.latency_ms, 1, w.caller)

        def write(conn: sqlite3.Connection) -> None:
            conn.execute(sql.INSERT_CALL, (utc_iso(self._now()), *row, *tail))

        return Work(write, alone=True)

    def reset(self, provider: str | None = None) -> None:
        """From now on budgets count only new rows (of ``provider``, or of all)."""
        self._check_writable()
        args = (utc_iso(self._now()), provider)
        self._transaction(lambda conn: conn.execute(sql.INSERT_RESET, args))
        log_event(logging.INFO, f"cost tracking reset for {provider or 'all providers'}")

    @after_queued_writes
    def check(self, *, provider: str, estimated_usd: float, budget: Budget) -> None:
        """Raise as :meth:`reserve` would, without writing anything."""
        refusal = self._read(
            lambda c: self._budget_check(c, self._now(), provider, estimated_usd, budget)[1]
        )
        if refusal is not None:
            raise refusal

    @after_queued_writes
    def spend(self, *, period: Period = "day", provider: str | None = None) -> float:
        """Spend in the current period as the budgets count it (since the applicable reset)."""
        return period_spend(
            lambda: self._read(lambda conn: self._spent(conn, self._now())), period, provider
        )

    @after_queued_writes
    def provider_summary(self) -> dict[str, dict[str, Any]]:
        """Per provider with rows counted this month: budget-counted costs, today's counts."""

        def work(conn: sqlite3.Connection) -> dict[str, dict[str, Any]]:
            now = self._now()
            tomorrow = utc_iso(period_bounds(now, "day")[1])
            counts = sql.COUNTS_TODAY, {"now": utc_iso(now), "tomorrow": tomorrow}
            today = {row[0]: row[1:] for row in conn.execute(*counts)}
            return summarise_providers(self._spent(conn, now), today)

        return self._read(work)

    @after_queued_writes
    def alerts(self) -> list[BudgetAlert]:
        """Every alert sent, oldest first."""
        rows = self._read(lambda c: c.execute(sql.alerts_query(c)).fetchall())
        return [BudgetAlert(*row) for row in rows]

    @after_queued_writes
    def rows(self, *, since: datetime | None = None, limit: int | None = None) -> list[dict]:
        """``calls`` rows from ``since`` on, oldest first; with ``limit``, the newest ones."""
        where, args = ("WHERE ts >= ?", [utc_iso(since)]) if since else ("", [])
        query = f"SELECT * FROM calls {where} ORDER BY id DESC LIMIT ?"
        rows = self._read(
            lambda c: c.execute(query, [*args, -1 if limit is None else limit]).fetchall()
        )
        return [dict(row) for row in reversed(rows)]

    @after_queued_writes
    def totals(self, *, by: Grouping = "day", since: datetime | None = None) -> list[dict]:
        """Settled rows summed per day, month, provider, model or caller (:meth:`Ledger.totals`)."""
        if by not in GROUPINGS:
            raise ValueError(f"by must be one of {', '.join(GROUPINGS)}, not {by!r}")
        since_iso = None if since is None else utc_iso(since)
        rows = self._read(lambda c: c.execute(*sql.totals(c, by, since_iso)).fetchall())
        return [dict(row) for row in rows]

    def _check_writable(self) -> None:
        if self.read_only:
            raise LLMError(
                f"the cost ledger {self.path} was opened read-only, for reports: open it"
                " without read_only=True to write it"
            )

    @after_queued_writes
    def close(self) -> None:
        """Close this process's connection (a later call opens a new one), once the
        writes queued for it are done."""
        self._file.close()

    def __enter__(self) -> CostLedger:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- internals -----------------------------------------------------------------------

    def _now(self) -> datetime:
        moment = self._clock()
        utc_iso(moment)  # rejects a naive datetime
        return moment.astimezone(UTC)

    def _spent(self, conn: sqlite3.Connection, now: datetime) -> dict[str | None, Spend]:
        """(day, month) spend per provider as budgets count it; the key None is the total."""
        return spend_by_provider(conn.execute(sql.BUDGET_SPEND, self._spend_window(now)))

    def _spent_total(self, conn: sqlite3.Connection, now: datetime) -> Spend:
        """(day, month) spend of all providers: one row to read, for the request path."""
        day, month = conn.execute(sql.BUDGET_TOTAL, self._spend_window(now)).fetchone()
        return day / NANOS_PER_USD, month / NANOS_PER_USD

    def _spend_window(self, now: datetime) -> dict[str, str]:
        return {"now": utc_iso(now), "cutoff": utc_iso(now - self._stale_after)}

    def _budget_check(
        self,
        conn: sqlite3.Connection,
        now: datetime,
        provider: str,
        estimate: float,
        budget: Budget,
    ) -> tuple[Spend | None, LLMQuotaExceededError | None]:
        """The spend of all providers (None when not read) and the refusal, if any."""
        if estimate <= 0:  # free: no need to read the spend
            return None, None
        spent = self._spent_total(conn, now)
        refusal = budget_refusal(
            budget, provider=provider, estimated_usd=estimate, spent=spent, now=now
        )
        return spent, refusal

    def announce(self, alert: BudgetAlert) -> None:
        """Log ``alert`` and pass it to ``on_alert`` (whose errors are logged, not raised)."""
        held = f", {usd_text(alert.reserved_usd)} more reserved" if alert.reserved_usd else ""
        log_event(
            logging.WARNING,
            f"budget alert: {alert.period} spend {usd_text(alert.spent_usd)} reached"
            f" {alert.threshold:.0%} of the {alert.period} limit {usd_text(alert.limit_usd)}"
            f" ({alert.period_key}{held})",
        )
        if self._on_alert is not None:
            try:
                self._on_alert(alert)
            except Exception as exc:
                log_event(logging.ERROR, f"the on_alert callback raised {exc!r}; call goes on")

    def _read(self, work: Callable[[sqlite3.Connection], T]) -> T:
        return self._transaction(work, write=False)
