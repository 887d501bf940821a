"""One SQLite ledger write as :class:`~leadfactory.llm.ledger.CostLedger` runs it.

The write's statements inside its transaction (or alone, in autocommit), what runs
after its commit in transactions of its own (a settlement's alert check), and what is
announced once everything is committed (the alerts it fired).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["Runner", "Work"]

Runner = Callable[..., Any]  # SQLiteFile.transaction(work, *, write=, single_statement=)


@dataclass(frozen=True)
class Work:
    """``write(conn)`` inside the transaction, ``then(run)`` after it, ``after(result)``
    once all is committed."""

    write: Callable[[sqlite3.Connection], Any]
    after: Callable[[Any], None] | None = None
    alone: bool = False  # one statement: may run in autocommit, without BEGIN/COMMIT
    # Once ``write`` has committed, ``then(run)`` runs its own work through ``run``
    # (SQLiteFile.transaction) and gives the result.
    then: Callable[[Runner], Any] | None = None

    def run(self, transaction: Runner) -> Any:
        """The write in a transaction of its own, what follows it, and its announcement."""
        result = transaction(self.write, single_statement=self.alone)
        if self.then is not None:
            result = self.then(transaction)
        return self.finish(result)

    def run_in(self, conn: sqlite3.Connection) -> Any:
        """The write and what follows it inside the caller's transaction (a batch's)."""
        result = self.write(conn)
        return result if self.then is None else self.then(lambda work, **_: work(conn))

    def finish(self, result: Any) -> Any:
        if self.after is not None:
            self.after(result)
            return None
        return result
