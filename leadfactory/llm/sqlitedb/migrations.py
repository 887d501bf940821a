"""Schema migrations in one style: registered functions, applied once each, in order."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlite_utils import Database

__all__ = ["Migrations"]


class Migrations:
    """An append-only list of schema steps, one set per kind of file.

    Register each step with the instance as a decorator; steps run in registration order,
    once each, recorded in sqlite-utils' ``_sqlite_migrations`` under ``name``.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.steps: list[Callable[[Database], None]] = []

    def __call__(self, step: Callable[[Database], None]) -> Callable[[Database], None]:
        self.steps.append(step)
        return step

    def pending(self, conn: sqlite3.Connection) -> list[str]:
        """Names of the steps not applied yet (reads the table without sqlite-utils)."""
        if not conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_sqlite_migrations'"
        ).fetchone():
            return [step.__name__ for step in self.steps]
        done = {
            name
            for (name,) in conn.execute(
                "SELECT name FROM _sqlite_migrations WHERE migration_set = ?", [self.name]
            )
        }
        return [step.__name__ for step in self.steps if step.__name__ not in done]

    def apply(self, conn: sqlite3.Connection, *, stop_before: str | None = None) -> None:
        """Apply the pending steps, inside the caller's transaction (tests: ``stop_before``)."""
        from sqlite_utils import Database
        from sqlite_utils import Migrations as Applier

        applier = Applier(self.name)
        for step in self.steps:
            applier()(step)
        applier.apply(Database(conn, execute_plugins=False), stop_before=stop_before)
