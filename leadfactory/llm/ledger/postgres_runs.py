"""The run store in the PostgreSQL ledger's schema (``batch_items``, migration m006_batch_items)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .postgres import PostgresLedger
from .run_store import RunStore, decode_answer, encode_answer

__all__ = ["PostgresRunStore"]

_UPSERT = (
    "INSERT INTO batch_items (run, item_id, cost_usd, response) VALUES (%s, %s, %s, %s)"
    " ON CONFLICT (run, item_id) DO UPDATE SET ts = now(), cost_usd = excluded.cost_usd,"
    " response = excluded.response"
)


class PostgresRunStore(RunStore):
    """Runs kept in ``ledger``'s database, through the ledger's pool (and its retries)."""

    def __init__(self, ledger: PostgresLedger) -> None:
        self._db = ledger._db  # the ledger's pool: migrated, retried, password kept out

    def answers(self, run: str) -> dict[str, dict[str, Any]]:
        """Every stored answer of ``run`` (see :meth:`RunStore.answers`)."""
        rows = self._db.run(
            lambda conn: conn.execute(
                "SELECT item_id, response FROM batch_items WHERE run = %s", [run]
            ).fetchall()
        )
        return {item_id: decode_answer(text) for item_id, text in rows}

    def record(self, run: str, answers: Sequence[tuple[str, dict[str, Any]]]) -> None:
        """Store the pairs in one transaction (see :meth:`RunStore.record`)."""
        if not answers:
            return
        rows = [(run, item_id, *encode_answer(response)) for item_id, response in answers]

        def work(conn: Any) -> None:
            with conn.transaction(), conn.cursor() as cursor:
                cursor.executemany(_UPSERT, rows)

        self._db.run(work)

    def forget(self, run: str) -> int:
        """Delete ``run``'s answers (see :meth:`RunStore.forget`)."""
        return self._db.run(
            lambda conn: conn.execute("DELETE FROM batch_items WHERE run = %s", [run]).rowcount
        )
