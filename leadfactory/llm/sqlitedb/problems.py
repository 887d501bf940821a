"""Why a path cannot serve as a library file, found before SQLite's terse errors are.

:class:`UnusableFileError` (a ``sqlite3.DatabaseError``, so code that survives a bad
file keeps working) carries the path and a reason a person can act on; the ledger turns
it into an :class:`~leadfactory.llm.exceptions.LLMError`, the cache logs it.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from .migrations import Migrations

__all__ = ["UnusableFileError", "foreign_problem", "path_problem", "tables"]

_HEADER = b"SQLite format 3\x00"


class UnusableFileError(sqlite3.DatabaseError):
    """``path`` cannot be used: ``reason`` says why (``"is a folder, not a file"``)."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path} {reason}")
        self.path, self.reason = path, reason


def path_problem(path: Path, *, writing: bool) -> str | None:
    """What stops ``path`` from being opened (for writing, or only read), or None.

    Looks without creating or changing anything. A missing file is a problem only when
    it could not be created (or when only reading).
    """
    if path.is_dir():
        return "is a folder, not a file"
    if path.exists():
        if not path.is_file():
            return "is not a regular file (a device such as /dev/null, or a pipe)"
        if not os.access(path, os.R_OK):
            return "is not readable by this user"
        with open(path, "rb") as file:
            header = file.read(len(_HEADER))
        if header and header != _HEADER:
            return "is not a SQLite database (a damaged file, or another kind of file)"
        if writing and not os.access(path, os.W_OK):
            return "is not writable by this user"
        wal = path.with_name(path.name + "-wal")
        if writing and not wal.exists() and not os.access(path.parent, os.W_OK | os.X_OK):
            return (
                f"is in a folder this user cannot write ({path.parent}, where SQLite keeps"
                " its -wal file)"
            )
        return None
    if not writing:
        return "does not exist"
    parent = next(parent for parent in path.parents if parent.exists())
    if not parent.is_dir():
        return f"cannot be created: {parent} is not a folder"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"cannot be created: the folder {parent} is not writable by this user"
    return None


def foreign_problem(
    conn: sqlite3.Connection, migrations: Migrations, *, reading: bool = False
) -> str | None:
    """Why the database belongs to another application, or None.

    Only a database where none of the set's steps is recorded can: when ``reading``, any
    table makes it foreign (there is nothing of ours to read); when writing, only tables
    the steps would create again (others may share the file).
    """
    own = not conn.in_transaction  # one snapshot: another process's migrations, whole or not
    if own:
        conn.execute("BEGIN")
    try:
        if len(migrations.pending(conn)) < len(migrations.steps):
            return None
        existing = tables(conn)
    finally:
        if own:
            conn.execute("COMMIT")
    if not existing:
        return None
    if reading:
        clash = sorted(existing)
    else:
        scratch = sqlite3.connect(":memory:", isolation_level=None)
        try:
            migrations.apply(scratch)
            clash = sorted(existing & (tables(scratch) - {"_sqlite_migrations"}))
        finally:
            scratch.close()
    if clash:
        return f"is the SQLite database of something else (its own tables: {', '.join(clash)})"
    return None


def tables(conn: sqlite3.Connection) -> set[str]:
    """The names of the database's tables and views."""
    rows = conn.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")
    return {name for (name,) in rows if not name.startswith("sqlite_")}
