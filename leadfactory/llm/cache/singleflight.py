"""Collapse concurrent identical requests into one call."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from .lifecycle import reset_after_fork

__all__ = ["SingleFlight"]

T = TypeVar("T")


class _Outcome(Generic[T]):
    """How a leader's call ended: a value, an error, or ``retry`` when the leader was
    interrupted (cancelled, KeyboardInterrupt) and a follower should take over."""

    __slots__ = ("error", "retry", "value")

    def __init__(
        self, value: Any = None, error: BaseException | None = None, retry: bool = False
    ) -> None:
        self.value = value
        self.error = error
        self.retry = retry

    def unwrap(self) -> T:
        if self.error is not None:
            raise self.error
        return self.value


_RETRY: _Outcome[Any] = _Outcome(retry=True)


class _ThreadCall:
    __slots__ = ("done", "outcome", "owner")

    def __init__(self, owner: int) -> None:
        self.owner = owner
        self.done = threading.Event()
        self.outcome: _Outcome[Any] = _RETRY


class SingleFlight:
    """Concurrent identical requests in one process make one call; the others wait and
    share its result or its error.

    The first caller for a key (the leader) runs ``fn``; callers arriving while it runs
    (followers) wait for it and receive the *same* result object, or have the same
    exception instance raised. Callers that mutate the result must copy it first.
    When the call ends the key is freed, so a later call runs ``fn`` again.

    If the leader is interrupted rather than failing (its task is cancelled, or a
    KeyboardInterrupt or SystemExit reaches it), the followers are not cancelled: one
    of them becomes the new leader and calls ``fn`` again. A follower that is itself
    cancelled stops waiting without disturbing the others.

    ``run`` (threads) and ``arun`` (asyncio) keep separate tables, and ``arun`` one per
    event loop, so a key is shared only among threads, or among tasks of one loop.
    Calling ``run``/``arun`` for a key from inside that key's own ``fn`` raises
    RuntimeError instead of waiting for itself forever.
    """

    def __init__(self) -> None:
        self.after_fork()
        reset_after_fork(self)

    def after_fork(self) -> None:
        """Start empty (also in a forked child, where the parent's calls never end)."""
        self._lock = threading.Lock()
        self._calls: dict[str, _ThreadCall] = {}
        # (event loop, key) -> (shared future, leader task); entries live only while the
        # call runs, so no loop is kept alive after it.
        self._async_calls: dict[
            tuple[asyncio.AbstractEventLoop, str],
            tuple[asyncio.Future[Any], asyncio.Task[Any] | None],
        ] = {}

    def run(self, key: str, fn: Callable[[], T]) -> T:
        """Call ``fn()`` unless a call for ``key`` is already running in another thread,
        in which case wait for that call and return (or raise) what it did."""
        me = threading.get_ident()
        while True:
            with self._lock:
                call = self._calls.get(key)
                if call is None:
                    call = self._calls[key] = _ThreadCall(me)
                    leader = True
                elif call.owner == me:
                    raise RuntimeError(f"SingleFlight.run({key!r}) re-entered from its own call")
                else:
                    leader = False
            if leader:
                return self._lead(key, call, fn)
            call.done.wait()
            if not call.outcome.retry:
                return call.outcome.unwrap()

    def _lead(self, key: str, call: _ThreadCall, fn: Callable[[], T]) -> T:
        try:
            value = fn()
        except Exception as exc:
            call.outcome = _Outcome(error=exc)
            raise
        else:
            call.outcome = _Outcome(value)
            return value
        finally:  # on BaseException the outcome stays _RETRY
            with self._lock:
                if self._calls.get(key) is call:
                    del self._calls[key]
            call.done.set()

    async def arun(self, key: str, fn: Callable[[], Awaitable[T]]) -> T:
        """Await ``fn()`` unless a call for ``key`` is already running in this event
        loop, in which case wait (without blocking the loop) for it and share its end."""
        slot = (asyncio.get_running_loop(), key)
        me = asyncio.current_task()
        while True:
            with self._lock:
                entry = self._async_calls.get(slot)
                if entry is None:
                    future: asyncio.Future[_Outcome[T]] = slot[0].create_future()
                    self._async_calls[slot] = (future, me)
                    leader = True
                else:
                    future, owner = entry
                    if owner is me and me is not None:
                        raise RuntimeError(
                            f"SingleFlight.arun({key!r}) re-entered from its own call"
                        )
                    leader = False
            if leader:
                return await self._alead(slot, future, fn)
            # shield: cancelling this follower must not cancel the shared future
            outcome = await asyncio.shield(future)
            if not outcome.retry:
                return outcome.unwrap()

    async def _alead(
        self,
        slot: tuple[asyncio.AbstractEventLoop, str],
        future: asyncio.Future[_Outcome[T]],
        fn: Callable[[], Awaitable[T]],
    ) -> T:
        outcome: _Outcome[T] = _RETRY
        try:
            value = await fn()
        except Exception as exc:
            outcome = _Outcome(error=exc)
            raise
        else:
            outcome = _Outcome(value)
            return value
        finally:  # on CancelledError (a BaseException) the outcome stays _RETRY
            with self._lock:
                if self._async_calls.get(slot, (None,))[0] is future:
                    del self._async_calls[slot]
            if not future.done():
                future.set_result(outcome)
