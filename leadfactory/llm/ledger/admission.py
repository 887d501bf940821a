"""A SQLite reservation in one statement: the budget check runs inside its INSERT.

``INSERT INTO calls ... SELECT ... FROM (the spend) WHERE lf_admit(day, month)``
(:data:`.statements.RESERVE_CALL`): SQLite takes the file's write lock when the
statement starts, before it reads the spend, so no other writer can change the spend
between the check and the new row, and the statement is its own transaction. That is
one call into SQLite where ``BEGIN IMMEDIATE``, a SELECT, an INSERT and a COMMIT were
four (each letting go of the GIL and waiting to get it back, on the caller's path).

``lf_admit`` is :class:`Admission`: it decides with :func:`.budget.budget_refusal`, the
arithmetic every ledger uses, and keeps the spend it saw and the refusal, if any, for
the ledger to read once the statement is done.
"""

from __future__ import annotations

import sqlite3
import weakref
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from ..exceptions import LLMQuotaExceededError
from .budget import NANOS_PER_USD, Spend, budget_refusal
from .writes import Reserve

__all__ = ["Admission", "FUNCTION"]

FUNCTION = "lf_admit"  # its name in SQL: lf_admit(day nano-dollars, month nano-dollars)


class Admission:
    """One ledger's ``lf_admit``, registered on each connection it is used with."""

    def __init__(self) -> None:
        self._conn: sqlite3.Connection | None = None  # the one it was last registered on
        self._asking: tuple[Reserve, datetime] | None = None
        self.spent: Spend | None = None  # what the last check saw
        self.refusal: LLMQuotaExceededError | None = None

    def insert(
        self,
        conn: sqlite3.Connection,
        statement: str,
        params: Mapping[str, Any],
        write: Reserve,
        now: datetime,
    ) -> int | None:
        """Run ``statement`` for ``write``: the new row's id, or None when refused
        (:attr:`refusal` says why). Hold the connection's lock."""
        if conn is not self._conn:  # a new (or reopened) connection
            admit = weakref.WeakMethod(self._admit)  # the connection must not keep us alive
            conn.create_function(FUNCTION, 2, lambda *spend: bool((f := admit()) and f(*spend)))
            self._conn = conn
        self._asking, self.spent, self.refusal = (write, now), None, None
        try:
            cursor = conn.execute(statement, params)
        finally:
            self._asking = None
        return cursor.lastrowid if cursor.rowcount == 1 else None

    def _admit(self, day: int, month: int) -> bool:
        """Called by SQLite, under the write lock: whether the reservation fits."""
        if self._asking is None:  # not one of ours: never admit blindly
            return False
        write, now = self._asking
        self.spent = (day / NANOS_PER_USD, month / NANOS_PER_USD)
        self.refusal = budget_refusal(
            write.budget,
            provider=write.provider,
            estimated_usd=write.estimated_usd,
            spent=self.spent,
            now=now,
        )
        return self.refusal is None
