"""In-memory locks that a fork never catches held.

A process forked while another of its threads holds a ``threading.Lock`` gives the child
a copy of that lock which nobody will ever release: the child's first use of the object
blocks forever. Objects whose ``_lock`` guards short in-memory updates (rate limits,
provider health) register with :func:`guard_at_fork`; before ``os.fork`` the forking
thread takes every registered lock (waiting out those short updates), so the child gets
whole state and free locks, and releases them afterwards, in the parent and the child.
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import Any

__all__ = ["guard_at_fork"]

_owners: weakref.WeakSet[Any] = weakref.WeakSet()
_registry_lock = threading.Lock()
_taken: list[Any] = []


def guard_at_fork(owner: Any) -> None:
    """Take ``owner._lock`` (a ``threading.Lock``) around every fork of this process."""
    with _registry_lock:
        _owners.add(owner)


def _before_fork() -> None:
    _registry_lock.acquire()
    _taken[:] = [owner._lock for owner in _owners]
    for lock in _taken:  # never nested in one another: no order to respect
        lock.acquire()


def _after_fork() -> None:
    for lock in reversed(_taken):
        lock.release()
    _taken.clear()
    _registry_lock.release()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_before_fork, after_in_parent=_after_fork, after_in_child=_after_fork
    )
