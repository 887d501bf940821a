"""The PostgreSQL ledger's writes, one function each (see :mod:`.postgres`).

Each write is checked before the transaction (:func:`checked`) and written inside it
by its function in :data:`WRITERS`, which adds the amounts it changes to ``deltas``;
:func:`add_to_totals` then adds them to the running totals in one sorted upsert.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from ..exceptions import LLMLedgerUnavailableError
from ..log import log_event
from . import postgres_schema as sql
from .budget import Budget, Reservation, budget_refusal, may_alert, nanos, period_key
from .writes import NOTHING_BILLED, CacheHit, LedgerWrite, Release, Reserve, Settle, check_write

__all__ = [
    "WRITERS",
    "Deltas",
    "add",
    "add_to_totals",
    "alone",
    "checked",
    "limited",
    "read_after",
    "unwritten",
]

Deltas = Counter[tuple[str, str, str]]  # (period, period key, provider) -> nano-dollars


def checked(write: LedgerWrite) -> LedgerWrite:
    """``write`` once valid: TypeError/ValueError, or the per-request cap's refusal."""
    check_write(write)
    if isinstance(write, Reserve) and _over_request_cap(write):
        per_request = replace(write.budget, daily_limit=None, monthly_limit=None)
        refusal = budget_refusal(
            per_request,
            provider=write.provider,
            estimated_usd=write.estimated_usd,
            spent=(0.0, 0.0),
            now=datetime.now(UTC),
        )
        if refusal is not None:
            raise refusal
    return write


def _over_request_cap(write: Reserve) -> bool:
    """Whether ``write`` passes its per-request cap, as :func:`budget_refusal` counts it
    (whole nano-dollars; a free request never does): the refusal is built only then."""
    cap, estimate = write.budget.max_cost_per_request, nanos(write.estimated_usd)
    return cap is not None and estimate > 0 and estimate > nanos(cap)


def alone(item: LedgerWrite | Exception, now: datetime) -> tuple[str, tuple[Any, ...]] | None:
    """The one statement that writes ``item`` and its totals, in a transaction of its own
    (:data:`.postgres_schema.INSERT_ONE`), with its arguments; None: the batch path only
    (a settlement of a row never written, an invalid write)."""
    match item:
        case Reserve():
            return sql.INSERT_ONE, _reserve_args(item, now)
        case CacheHit():
            return sql.INSERT_ONE, _cache_hit_args(item, now)
        case Settle() if item.reservation.row_id:
            return sql.SETTLE_ONE, _settle_args(item)
        case Release() if item.reservation.row_id:
            return sql.SETTLE_ONE, _release_args(item)
    return None


def read_after(
    write: LedgerWrite | Exception,
    now: datetime,
    alerted: Any,
    window: Callable[[datetime], dict[str, Any]],
) -> tuple[str, dict[str, Any]] | None:
    """The read that follows a lone write's commit, for the check after it, with its
    arguments (``window(now)``: the spend window): the spend a reservation is checked
    against, the running totals after a settlement that may send an alert (``alerted``:
    the alerts this process knows were sent); None: no read."""
    if isinstance(write, Reserve):
        needed = write.estimated_usd > 0 and limited(write.budget)
        return (sql.BUDGET_SPEND, window(now)) if needed else None
    budget = write.reservation.budget if isinstance(write, Settle) else None
    if budget is not None and may_alert(budget, write.cost_usd, now=now, sent=alerted):
        return sql.RUNNING_TOTALS, window(now)
    return None


def limited(budget: Budget) -> bool:
    """Whether ``budget`` has a daily or monthly limit (a reservation is checked after)."""
    return budget.daily_limit is not None or budget.monthly_limit is not None


def _reserve_args(w: Reserve, now: datetime) -> tuple[Any, ...]:
    row = (now, w.request_id, w.provider, w.model, w.strategy, "pending")
    return (*row, 0, 0, 0, 0.0, w.estimated_usd, 0.0, 0.0, 0, w.caller)


def _reserve(conn: Any, w: Reserve, now: datetime, deltas: Deltas) -> int:
    row_id, *written = conn.execute(sql.INSERT_CALL, _reserve_args(w, now)).fetchone()
    _counted(written, deltas)
    return row_id


def _settle(conn: Any, w: Settle, now: datetime, deltas: Deltas) -> bool:
    """Returns whether a row was settled (False: reserved while the database was down)."""
    reservation = w.reservation
    if reservation.row_id == 0:  # reserved while the database was down: nothing to settle
        _warn_unwritten(reservation.request_id, reservation.provider)
        return False
    if not _update(conn, _settle_args(w), deltas) and not _restore(conn, w, now, deltas):
        raise ValueError(f"ledger row {reservation.row_id} is not a pending reservation")
    return True


def _settle_args(w: Settle) -> tuple[Any, ...]:
    r, tokens = w.reservation, (w.prompt_tokens, w.completion_tokens)
    args = (w.outcome, w.cost_usd, *tokens, sum(tokens), w.latency_ms, w.error_class, w.model)
    return (*args, int(bool(w.estimated)), *w.billed().values(), r.row_id, r.request_id)


def _release(conn: Any, w: Release, now: datetime, deltas: Deltas) -> None:
    if w.reservation.row_id:  # a row settled already is left as it is; a row lost: nothing
        _update(conn, _release_args(w), deltas)


def _release_args(w: Release) -> tuple[Any, ...]:
    nothing = ("error", 0.0, 0, 0, 0, 0.0, w.error_class, None, 0, *NOTHING_BILLED)
    return (*nothing, w.reservation.row_id, w.reservation.request_id)


def _update(conn: Any, args: tuple[Any, ...], deltas: Deltas) -> bool:
    """Settle a pending row with ``args``; False when no pending row has that id."""
    return _counted(conn.execute(sql.SETTLE_CALL, args).fetchone(), deltas)


def _restore(conn: Any, w: Settle, now: datetime, deltas: Deltas) -> bool:
    """The settled row of a reservation that is gone; False if the row is there.

    A reservation commits without waiting for the disk (see .postgres): a server crash
    within a moment of it may lose it, and the call it admitted is then charged here.
    """
    r, tokens = w.reservation, (w.prompt_tokens, w.completion_tokens)
    row = (r.row_id, now, r.request_id, r.provider, w.outcome, w.cost_usd, *tokens)
    row += (sum(tokens), w.latency_ms, w.error_class, w.model, int(bool(w.estimated)))
    restored = conn.execute(sql.RESTORE_CALL, (*row, *w.billed().values())).fetchone()
    if restored is not None:
        conn.execute(sql.SEQUENCE_PAST, [r.row_id])
        log_event(
            logging.WARNING,
            f"ledger row {r.row_id} (request {r.request_id}) was gone when its call was"
            " settled (lost in a database crash?): written again, settled",
        )
    return _counted(restored, deltas)


def _counted(row: Sequence[Any] | None, deltas: Deltas) -> bool:
    """Add a written row's (ts, provider, amount, counted) to ``deltas``; False for none."""
    if row is None:
        return False
    ts, provider, amount, counted = row
    if counted:
        add(deltas, ts, provider, amount)
    return True


def _cache_hit(conn: Any, w: CacheHit, now: datetime, deltas: Deltas) -> None:
    add(deltas, now, w.provider, 0)  # counts nothing, but lists the provider this month
    conn.execute(sql.INSERT_CALL, _cache_hit_args(w, now))


def _cache_hit_args(w: CacheHit, now: datetime) -> tuple[Any, ...]:
    tokens = (w.prompt_tokens, w.completion_tokens)
    row = (now, w.request_id, w.provider, w.model, w.strategy, "cache_hit")
    return (*row, *tokens, sum(tokens), 0.0, 0.0, w.saved_usd, w.latency_ms, 1, w.caller)


WRITERS: dict[type, Callable[[Any, Any, datetime, Deltas], Any]] = {
    Reserve: _reserve,
    Settle: _settle,
    Release: _release,
    CacheHit: _cache_hit,
}


def add(deltas: Deltas, ts: datetime, provider: str, amount: int) -> None:
    for period in ("day", "month"):
        deltas[(period, period_key(ts, period), provider)] += amount


def add_to_totals(conn: Any, deltas: Deltas) -> None:
    """One upsert, rows in key order: writers never wait on each other in a cycle."""
    keys = sorted(deltas)  # zero amounts too: a provider's first row makes its totals row
    if keys:
        columns = [list(column) for column in zip(*keys, strict=True)]
        conn.execute(sql.ADD_TO_TOTALS, [*columns, [deltas[key] for key in keys]])


def unwritten(item: LedgerWrite | Exception, down: LLMLedgerUnavailableError) -> Any:
    """A write's result when the database is down: free requests go on, unrecorded."""
    match item:
        case Reserve(estimated_usd=0):
            _warn_unwritten(item.request_id, item.provider)
            return Reservation(0, item.request_id, item.provider, 0.0, item.budget, None)
        case Settle() | Release() if item.reservation.row_id == 0:
            return None
        case CacheHit():
            _warn_unwritten(item.request_id, item.provider)
            return None
    return item if isinstance(item, Exception) else down


def _warn_unwritten(request_id: str, provider: str) -> None:
    log_event(
        logging.WARNING,
        f"the PostgreSQL ledger did not answer: the row of request {request_id} to"
        f" {provider} (free) is not written",
    )
