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
from .budget import Reservation, budget_refusal, may_alert, period_key
from .sqlite_ledger import _check_non_negative

__all__ = ["WRITERS", "Deltas", "add", "add_to_totals", "checked", "unwritten"]

Deltas = Counter[tuple[str, str, str]]  # (period, period key, provider) -> nano-dollars


def checked(method: str, a: dict[str, Any]) -> dict[str, Any]:
    """``a`` once its values are valid, else ValueError (or the per-request refusal)."""
    if method == "reserve":
        _check_non_negative(estimated_usd=a["estimated_usd"])
        per_request = replace(a["budget"], daily_limit=None, monthly_limit=None)
        refusal = budget_refusal(
            per_request,
            provider=a["provider"],
            estimated_usd=a["estimated_usd"],
            spent=(0.0, 0.0),
            now=datetime.now(UTC),
        )
        if refusal is not None:
            raise refusal
    elif method == "settle":
        if a["outcome"] not in ("success", "error"):
            raise ValueError(f"outcome must be 'success' or 'error', not {a['outcome']!r}")
        _check_non_negative(
            cost_usd=a["cost_usd"], tokens=min(a["prompt_tokens"], a["completion_tokens"])
        )
    else:
        _check_non_negative(saved_usd=a["saved_usd"])
    return a


def _reserve(conn: Any, a: dict[str, Any], now: datetime, deltas: Deltas) -> int:
    row = (now, a["request_id"], a["provider"], a["model"], a["strategy"], "pending")
    args = (*row, 0, 0, 0, 0.0, a["estimated_usd"], 0.0, 0.0, 0, a["caller"])
    row_id, amount = conn.execute(sql.INSERT_CALL, args).fetchone()
    add(deltas, now, a["provider"], amount)
    return row_id


def _settle(conn: Any, a: dict[str, Any], now: datetime, deltas: Deltas) -> bool:
    """Returns whether the settlement may have reached an alert threshold."""
    reservation: Reservation = a["reservation"]
    if reservation.row_id == 0:  # reserved while the database was down: nothing to settle
        _warn_unwritten(reservation.request_id, reservation.provider)
        return False
    tokens = (a["prompt_tokens"], a["completion_tokens"])
    args = (a["outcome"], a["cost_usd"], *tokens, sum(tokens), a["latency_ms"])
    args += (a["error_class"], a["model"], int(bool(a["estimated"])), reservation.row_id)
    row = conn.execute(sql.SETTLE_CALL, args).fetchone()
    if row is None:
        raise ValueError(f"ledger row {reservation.row_id} is not a pending reservation")
    ts, provider, difference, counted = row
    if counted:
        add(deltas, ts, provider, difference)
    budget = reservation.budget
    return budget is not None and may_alert(budget, reservation.spent, a["cost_usd"])


def _cache_hit(conn: Any, a: dict[str, Any], now: datetime, deltas: Deltas) -> None:
    tokens = (a["prompt_tokens"], a["completion_tokens"])
    row = (now, a["request_id"], a["provider"], a["model"], a["strategy"], "cache_hit")
    conn.execute(
        sql.INSERT_CALL,
        (*row, *tokens, sum(tokens), 0.0, 0.0, a["saved_usd"], a["latency_ms"], 1, a["caller"]),
    )


WRITERS: dict[str, Callable[[Any, dict[str, Any], datetime, Deltas], Any]] = {
    "reserve": _reserve,
    "settle": _settle,
    "record_cache_hit": _cache_hit,
}


def add(deltas: Deltas, ts: datetime, provider: str, amount: int) -> None:
    for period in ("day", "month"):
        deltas[(period, period_key(ts, period), provider)] += amount


def add_to_totals(conn: Any, deltas: Deltas) -> None:
    """One upsert, rows in key order: writers never wait on each other in a cycle."""
    keys = sorted(key for key, amount in deltas.items() if amount)
    if keys:
        columns = [list(column) for column in zip(*keys, strict=True)]
        conn.execute(sql.ADD_TO_TOTALS, [*columns, [deltas[key] for key in keys]])


def unwritten(item: Any, down: LLMLedgerUnavailableError) -> Any:
    """A write's result when the database is down: free requests go on, unrecorded."""
    if isinstance(item, Exception):
        return item
    method, a = item
    if method == "reserve" and a["estimated_usd"] == 0:
        _warn_unwritten(a["request_id"], a["provider"])
        return Reservation(0, a["request_id"], a["provider"], 0.0, a["budget"], None)
    if method == "settle" and a["reservation"].row_id == 0:
        return None
    if method == "record_cache_hit":
        _warn_unwritten(a["request_id"], a["provider"])
        return None
    return down


def _warn_unwritten(request_id: str, provider: str) -> None:
    log_event(
        logging.WARNING,
        f"the PostgreSQL ledger did not answer: the row of request {request_id} to"
        f" {provider} (free) is not written",
    )
