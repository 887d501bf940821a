"""Process events for objects holding locks, threads or connections: a forked child
resets them, and an exiting process closes them (writing what they still hold)."""

from __future__ import annotations

import atexit
import contextlib
import os
import weakref
from typing import Protocol

__all__ = ["close_at_exit", "reset_after_fork"]


class _Forkable(Protocol):
    def after_fork(self) -> None: ...


class _Closable(Protocol):
    def close(self) -> None: ...


_AFTER_FORK: weakref.WeakSet[_Forkable] = weakref.WeakSet()
_AT_EXIT: weakref.WeakSet[_Closable] = weakref.WeakSet()


def reset_after_fork(owner: _Forkable) -> None:
    """Call ``owner.after_fork()`` in every child forked while ``owner`` lives: the only
    thread there is the forking one, so a lock another thread held stays held forever
    unless it is replaced."""
    _AFTER_FORK.add(owner)


def close_at_exit(owner: _Closable) -> None:
    """Call ``owner.close()`` when the process exits normally, if it still lives."""
    _AT_EXIT.add(owner)


def _reset_all() -> None:
    for owner in list(_AFTER_FORK):
        owner.after_fork()


def _close_all() -> None:
    for owner in list(_AT_EXIT):
        with contextlib.suppress(Exception):  # exiting: owners log their own failures
            owner.close()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_all)
atexit.register(_close_all)
