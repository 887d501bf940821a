"""The one place the library opens SQLite files: the ledger and the cache both use it.

::

    steps = Migrations("leadfactory-llm-ledger")     # one set per kind of file

    @steps                                            # append only: never edit a shipped one
    def m001_calls(db: sqlite_utils.Database) -> None: ...

    file = SQLiteFile(path, migrations=steps, busy_timeout=30.0)
    rows = file.transaction(lambda conn: conn.execute("SELECT ...").fetchall(), write=False)
    file.close()                                      # the next use opens it again

:class:`SQLiteFile` takes care of opening (a missing file is created 0600, in
directories it creates 0700; an existing directory keeps its mode; WAL,
``synchronous=NORMAL``, pending migrations applied under ``BEGIN IMMEDIATE`` so
concurrent openers take turns; ``read_only=True`` creates and changes nothing), of one
connection per process shared by its threads behind a lock, of busy retries
(:func:`retry_busy`, then ``on_busy(exc)`` is raised) and of WAL checkpoints on a
background thread per file and process (:class:`BackgroundCheckpointer`).

Forks: before ``os.fork`` every file's locks are taken, so no thread is inside SQLite
with one of these connections at that moment; the child closes the idle connections it
inherited (SQLite's in-process lock records would otherwise shut it out of the file) and
makes new locks, connections and threads on first use.

Modules: ``file`` (SQLiteFile, private files), ``forks`` (connections across a fork),
``busy`` (retries), ``migrations``, ``checkpoint`` (the background thread),
``problems`` (why a path cannot serve: a folder, a damaged or foreign file...).

Migrations are one style: functions registered in order on a :class:`Migrations` set,
applied once each by sqlite-utils' ``Migrations`` (recorded in ``_sqlite_migrations``
under the set's name; sqlite-utils is imported only when a step has to run).
"""

from __future__ import annotations

from .busy import is_busy, retry_busy
from .checkpoint import BACKSTOP_PAGES, BackgroundCheckpointer
from .file import SQLiteFile, create_private_file
from .migrations import Migrations
from .problems import UnusableFileError

__all__ = [
    "BACKSTOP_PAGES",
    "BackgroundCheckpointer",
    "Migrations",
    "SQLiteFile",
    "UnusableFileError",
    "create_private_file",
    "is_busy",
    "retry_busy",
]
