"""The run store in the SQLite ledger file (table ``batch_items``, migration m009_batch_items)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from .budget import utc_iso
from .run_store import RunStore, decode_answer, encode_answer
from .sqlite_ledger import CostLedger

__all__ = ["SQLiteRunStore"]

_UPSERT = (
    "INSERT OR REPLACE INTO batch_items (run, item_id, ts, cost_usd, response)"
    " VALUES (?, ?, ?, ?, ?)"
)


class SQLiteRunStore(RunStore):
    """Runs kept in ``ledger``'s file, through the ledger's own connection and lock."""

    def __init__(self, ledger: CostLedger) -> None:
        self._file = ledger._file  # one connection per process and file: the ledger's

    def answers(self, run: str) -> dict[str, dict[str, Any]]:
        """Every stored answer of ``run`` (see :meth:`RunStore.answers`)."""
        rows = self._file.transaction(
            lambda conn: conn.execute(
                "SELECT item_id, response FROM batch_items WHERE run = ?", [run]
            ).fetchall(),
            write=False,
        )
        return {item_id: decode_answer(text) for item_id, text in rows}

    def record(self, run: str, answers: Sequence[tuple[str, dict[str, Any]]]) -> None:
        """Store the pairs in one transaction (see :meth:`RunStore.record`)."""
        if not answers:
            return
        now = utc_iso(datetime.now(UTC))
        rows = [(run, item_id, now, *encode_answer(response)) for item_id, response in answers]

        def work(conn: sqlite3.Connection) -> None:
            conn.executemany(_UPSERT, rows)

        self._file.transaction(work)

    def forget(self, run: str) -> int:
        """Delete ``run``'s answers (see :meth:`RunStore.forget`)."""
        return self._file.transaction(
            lambda conn: conn.execute("DELETE FROM batch_items WHERE run = ?", [run]).rowcount
        )
