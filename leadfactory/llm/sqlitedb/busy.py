"""Retry SQLite work that another connection's lock refused.

SQLite waits for a lock itself (the connection's ``timeout``), but some refusals come
back at once: a deferred transaction whose snapshot went stale (``SQLITE_BUSY_SNAPSHOT``),
or a file another process is still setting up.
"""

from __future__ import annotations

import random
import sqlite3
import time
from collections.abc import Callable
from typing import TypeVar

__all__ = ["is_busy", "retry_busy"]

T = TypeVar("T")


def is_busy(exc: BaseException) -> bool:
    """Whether ``exc`` is SQLite's "database is locked" or "table is locked"."""
    code = getattr(exc, "sqlite_errorcode", None)
    return (
        isinstance(exc, sqlite3.OperationalError)
        and code is not None
        and (code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED))
    )


def retry_busy(attempt: Callable[[], T], *, timeout: float) -> T:
    """``attempt()``, again after a short random backoff while SQLite refuses it as busy.

    Raises the last busy error after ``timeout`` seconds, other errors at once.
    ``attempt`` must leave nothing half-done when it raises.
    """
    deadline, delay = time.monotonic() + timeout, 0.0005
    while True:
        try:
            return attempt()
        except sqlite3.OperationalError as exc:
            left = deadline - time.monotonic()
            if not is_busy(exc) or left <= 0:
                raise
        time.sleep(min(left, delay * random.uniform(0.5, 1.5)))
        delay = min(delay * 2, 0.05)
