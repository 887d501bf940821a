"""Connections to the PostgreSQL ledger: one pool per process, retries, readable errors.

:meth:`PostgresConnections.run` runs ``work(connection)`` on a pooled autocommit
connection and retries it when PostgreSQL asks (serialization failure 40001, deadlock
40P01), or once when a pooled connection turned out broken (a restarted server). Any
other failure, or no connection within ``timeout`` seconds, becomes an
:class:`LLMLedgerUnavailableError` that names the URL without its password; the driver's
exception is not chained (its text is redacted into the message). A forked child opens
its own pool and never touches the parent's sockets.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from ..dburl import check_postgres_url, public_url, url_secrets
from ..exceptions import LLMLedgerUnavailableError
from ..redact import redact

__all__ = ["PostgresConnections"]

T = TypeVar("T")
RETRY_STATES = frozenset({"40001", "40P01"})  # PostgreSQL says: run it again
_INHERITED: list[Any] = []  # a parent's pools in a forked child: kept, never used or closed


class PostgresConnections:
    """This process's pool of connections to ``url``; ``prepare(conn)`` runs once first."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float,
        max_connections: int,
        prepare: Callable[[Any], object] = lambda conn: None,
    ) -> None:
        self._url = check_postgres_url(url)
        self.public_url = public_url(self._url)
        self._secrets = url_secrets(self._url)
        self.timeout, self._max_connections, self._prepare = timeout, max_connections, prepare
        self._pool: Any = None
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._prepared = False

    def run(self, work: Callable[[Any], T]) -> T:
        """``work(connection)``, retried as the module docstring says."""
        import psycopg
        from psycopg_pool import PoolTimeout

        deadline = time.monotonic() + max(self.timeout, 1.0) * 6
        delay, reconnected = 0.005, False
        while True:
            try:
                with self._connections().connection(timeout=self.timeout) as conn:
                    if not self._prepared:
                        self._prepare(conn)
                        self._prepared = True
                    return work(conn)
            except psycopg.Error as exc:
                late = time.monotonic() > deadline
                broken = exc.sqlstate is None and isinstance(exc, psycopg.OperationalError)
                if late or not (exc.sqlstate in RETRY_STATES or (broken and not reconnected)):
                    raise self.unavailable(exc) from None
                reconnected = reconnected or broken
            except PoolTimeout as exc:
                raise self.unavailable(exc) from None
            time.sleep(random.uniform(0, delay))
            delay = min(delay * 2, 0.2)

    def borrow(self) -> Any | None:
        """A connection of the pool for work that outlives one :meth:`run` (it must come
        back through :meth:`give_back`), or None: the schema not checked yet in this
        process, or no connection free (then :meth:`run` waits for one, or fails)."""
        from psycopg_pool import PoolTimeout

        if not self._prepared:
            return None
        try:
            return self._connections().getconn(timeout=0.001)
        except PoolTimeout:
            return None

    def give_back(self, conn: Any) -> None:
        """Take back a connection :meth:`borrow` lent (closed: the pool replaces it)."""
        self._connections().putconn(conn)

    def unavailable(self, exc: BaseException) -> LLMLedgerUnavailableError:
        """The library's error for the driver's ``exc``: URL without password, no chain."""
        import psycopg

        lines = str(exc).strip().splitlines()
        detail = redact(lines[0] if lines else "", self._secrets)
        state = getattr(exc, "sqlstate", None)
        what = f"{type(exc).__name__}{f' {state}' if state else ''}: {detail}"
        if isinstance(exc, psycopg.Error) and not isinstance(exc, psycopg.OperationalError):
            happened = f"refused a statement ({what})"
        else:
            happened = f"did not answer within {self.timeout:g}s ({what}); no paid call is made"
            happened += " while the ledger is down"
        return LLMLedgerUnavailableError(
            f"the PostgreSQL ledger at {self.public_url} {happened}: check that the server"
            " runs and LLM_LEDGER_URL points at it",
            metadata={"ledger": self.public_url, "sqlstate": state},
        )

    def close(self) -> None:
        """Close this process's connections (a later :meth:`run` opens new ones)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None and self._pid == os.getpid():
            pool.close()

    def _connections(self) -> Any:
        pool = self._pool
        if pool is not None and self._pid == os.getpid():
            return pool
        with self._lock:
            if self._pid != os.getpid():
                _INHERITED.append(self._pool)  # the parent's sockets: never touched here
                self._pool, self._pid, self._lock = None, os.getpid(), threading.Lock()
            if self._pool is None:
                from psycopg_pool import ConnectionPool

                self._pool = ConnectionPool(
                    self._url,
                    min_size=1,
                    max_size=self._max_connections,
                    kwargs={"autocommit": True},
                    open=False,
                    timeout=self.timeout,
                    name="leadfactory-ledger",
                )
                self._pool.open(wait=False)
            return self._pool
