"""Single-flight across hosts: one host asks the provider, the others wait for its answer.

:class:`~.singleflight.SingleFlight` collapses identical requests within one process.
When the cache's store is shared by hosts and can hold a lock (the Redis store's
``claim``/``claimed``/``release``), :class:`HostFlight` does the same between them: the
first host to claim a key calls and stores the answer; a host finding the key claimed
looks in the store every :data:`POLL` seconds until the answer is there, the claim is
gone (the caller failed: the next host claims it) or ``timeout`` seconds have passed
(then it calls itself). The claim expires after ``timeout`` too, so a host killed
mid-call holds nobody up for longer. If the store cannot be reached, every host calls.

The sync and async drivers share the decisions: :meth:`HostFlight._turn` yields when
it wants to wait one poll, and returns what to do.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, runtime_checkable

__all__ = ["HostFlight", "POLL"]

POLL = 0.05  # seconds between looks while another host calls

A = TypeVar("A")  # what a lookup finds (a served answer)
R = TypeVar("R")


@runtime_checkable
class HostLocks(Protocol):
    """A store that can say which host is calling for a key."""

    errors: tuple[type[BaseException], ...]

    def claim(self, key: str, seconds: float) -> str | None: ...

    def claimed(self, key: str) -> bool: ...

    def release(self, key: str, token: str) -> None: ...


@dataclass(frozen=True)
class _Turn:
    found: Any = None  # an answer another host stored
    token: str | None = None  # our claim, to release after the call


class HostFlight:
    """Waits for other hosts' identical calls through ``store()`` (the cache's store)."""

    def __init__(self, store: Callable[[], Any], timeout: float) -> None:
        self._store = store
        self._timeout = timeout
        self._seen: tuple[Any, HostLocks | None] = (None, None)

    def locks(self) -> HostLocks | None:
        """The store, if it can hold claims (else None). Checked once per store: an
        ``isinstance`` against a runtime protocol costs ~30 us, a miss pays it twice."""
        store = self._store()
        seen, locks = self._seen
        if store is not seen:
            locks = store if isinstance(store, HostLocks) else None
            self._seen = (store, locks)
        return locks

    def run(
        self,
        key: str,
        lookup: Callable[[], A | None],
        serve: Callable[[A], R],
        call: Callable[[], R],
    ) -> R:
        """``serve(answer)`` of another host's answer, else ``call()`` (while claimed)."""
        turn = self._decide(key, lookup, time.sleep)
        if turn.found is not None:
            return serve(turn.found)
        try:
            return call()
        finally:
            self._release(key, turn.token)

    async def arun(
        self,
        key: str,
        lookup: Callable[[], A | None],
        serve: Callable[[A], Awaitable[R]],
        call: Callable[[], Awaitable[R]],
    ) -> R:
        """The asyncio twin of :meth:`run` (waits without blocking the loop)."""
        steps = self._turn(key, lookup)
        while True:
            try:
                next(steps)
            except StopIteration as done:
                turn: _Turn = done.value
                break
            await asyncio.sleep(POLL)
        if turn.found is not None:
            return await serve(turn.found)
        try:
            return await call()
        finally:
            self._release(key, turn.token)

    # -- decisions ---------------------------------------------------------------------

    def _decide(self, key: str, lookup: Callable[[], Any], sleep: Callable[[float], None]) -> _Turn:
        steps = self._turn(key, lookup)
        while True:
            try:
                next(steps)
            except StopIteration as done:
                return done.value
            sleep(POLL)

    def _turn(self, key: str, lookup: Callable[[], Any]) -> Generator[None, None, _Turn]:
        store = self.locks()
        if store is None:
            return _Turn()
        deadline = time.monotonic() + self._timeout
        try:
            while True:
                token = store.claim(key, self._timeout)
                if token is not None:
                    found = lookup()  # stored by a host that finished just before our claim
                    if found is not None:
                        store.release(key, token)
                        return _Turn(found=found)
                    return _Turn(token=token)
                while True:  # another host is calling: wait for its answer
                    yield
                    found = lookup()
                    if found is not None:
                        return _Turn(found=found)
                    if time.monotonic() >= deadline:
                        return _Turn()  # waited long enough: call ourselves
                    if not store.claimed(key):
                        break  # it gave up without an answer: claim it ourselves
        except store.errors:
            return _Turn()  # no shared store now: every host calls

    def _release(self, key: str, token: str | None) -> None:
        if token is None:
            return
        store = self._store()
        with contextlib.suppress(store.errors):  # else the claim expires by itself
            store.release(key, token)
