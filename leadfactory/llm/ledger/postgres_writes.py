"""The PostgreSQL ledger's writes, one function each (see :mod:`.postgres`).

Each write is checked before the transaction (:func:`checked`) and written inside it
by its function in :data:`WRITERS`, which adds the amounts it changes to ``deltas``;
:func:`add_to_totals` then adds them to the running totals in one sorted upsert.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from ..exceptions import LLMLedgerUnavailableError
from ..log import log_event
from . import postgres_schema as sql
from .budget import Reservation, budget_refusal, period_key
from .writes import NOTHING_BILLED, CacheHit, LedgerWrite, Release, Reserve, Settle, check_write

__all__ = ["WRITERS", "Deltas", "add", "add_to_totals", "checked", "unwritten"]

Deltas = Counter[tuple[str, str, str]]  # (period, period key, provider) -> nano-dollars


def checked(write: LedgerWrite) -> LedgerWrite:
    """``write`` once valid: TypeError/ValueError, or the per-request cap's refusal."""
    check_write(write)
    if isinstance(write, Reserve):
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


def _reserve(conn: Any, w: Reserve, now: datetime, deltas: Deltas) -> int:
    row = (now, w.request_id, w.provider, w.model, w.strategy, "pending")
    args = (*row, 0, 0, 0, 0.0, w.estimated_usd, 0.0, 0.0, 0, w.caller)
    row_id, amount = conn.execute(sql.INSERT_CALL, args).fetchone()
    add(deltas, now, w.provider, amount)
    return row_id


def _settle(conn: Any, w: Settle, now: datetime, deltas: Deltas) -> bool:
    """Returns whether a row was settled (False: reserved while the database was down)."""
    reservation = w.reservation
    if reservation.row_id == 0:  # reserved while the database was down: nothing to settle
        _warn_unwritten(reservation.request_id, reservation.provider)
        return False
    tokens = (w.prompt_tokens, w.completion_tokens)
    args = (w.outcome, w.cost_usd, *tokens, sum(tokens), w.latency_ms, w.error_class, w.model)
    args += (int(bool(w.estimated)), *w.billed().values())
    row = (reservation.row_id, reservation.request_id)
    if not _update(conn, (*args, *row), deltas) and not _restore(conn, w, now, deltas):
        raise ValueError(f"ledger row {reservation.row_id} is not a pending reservation")
    return True


def _release(conn: Any, w: Release, now: datetime, deltas: Deltas) -> None:
    r = w.reservation
    if r.row_id:  # a row settled already is left as it is; a row lost is nothing to give back
        args = ("error", 0.0, 0, 0, 0, 0.0, w.error_class, None, 0, *NOTHING_BILLED)
        _update(conn, (*args, r.row_id, r.request_id), deltas)


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


def _counted(row: tuple[Any, ...] | None, deltas: Deltas) -> bool:
    """Add a written row's (ts, provider, amount, counted) to ``deltas``; False for none."""
    if row is None:
        return False
    ts, provider, amount, counted = row
    if counted:
        add(deltas, ts, provider, amount)
    return True


def _cache_hit(conn: Any, w: CacheHit, now: datetime, deltas: Deltas) -> None:
    add(deltas, now, w.provider, 0)  # counts nothing, but lists the provider this month
    tokens = (w.prompt_tokens, w.completion_tokens)
    row = (now, w.request_id, w.provider, w.model, w.strategy, "cache_hit")
    conn.execute(
        sql.INSERT_CALL,
        (*row, *tokens, sum(tokens), 0.0, 0.0, w.saved_usd, w.latency_ms, 1, w.caller),
    )


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
