"""Ledger writes done on a thread with group commit: the async client's, and settlements
written in the background.

SQLite calls block, and ``sqlite3`` lets go of the GIL inside each statement, so an
event loop that wrote the ledger itself would both wait for the disk and queue for the
GIL behind every other thread, several times per request. Instead, coroutines hand
their writes to one :class:`LedgerWorker` thread per ledger and await the result; the
thread runs whatever has queued up meanwhile in one transaction
(:meth:`Ledger.run_batch`), so a hundred concurrent requests share a handful of
COMMITs.

A ledger that settles in the background (``settles_in_background``: the PostgreSQL
ledger by default) gets its settlements, releases and cache-hit rows queued here
without anyone waiting (:meth:`LedgerWorker.write_later`): the reservation was committed
before the call, so the budgets already count the call at its worst case until its
settlement lands, at most ``LINGER_SECONDS`` later: a settlement waits that long for
the next ones to share its transaction (one commit, one disk flush and one wake-up of
this thread for all of them, instead of each), unless something waits for it (a read,
``close()``, a refused reservation, an awaited write): then it goes at once. Alerts
those settlements fire are announced on this thread. A write the database could not
take (unreachable) is tried again for ``RETRY_SECONDS``. Reads of the ledger wait for
what this process queued (:func:`after_queued_writes`), and so do ``close()``, the
interpreter's exit and the end of a ``multiprocessing`` child.
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import logging
import os
import queue
import threading
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from ..exceptions import LLMLedgerUnavailableError
from ..log import log_event
from .budget import BudgetAlert, Reservation
from .writes import LedgerWrite, Release

if TYPE_CHECKING:
    from .protocol import Ledger

__all__ = ["LedgerWorker", "after_queued_writes"]

MAX_BATCH = 256  # writes per transaction at the most
IDLE_SECONDS = 30.0  # a writer thread with nothing to do for this long ends
RETRY_SECONDS = 60.0  # a queued write the database could not take is tried for this long
RETRY_DELAYS = (0.1, 0.5, 1.0, 2.0, 5.0)  # between those tries (the last one repeats)
LINGER_SECONDS = 0.05  # a write nobody awaits waits this long for others to join it
DRAIN_SECONDS = 5.0  # what a read, close() or the exit waits for queued writes at most

# (write, loop, future); no loop and no future for a write nobody awaits
_Item = tuple[LedgerWrite, asyncio.AbstractEventLoop | None, asyncio.Future | None]
_WORKERS: weakref.WeakKeyDictionary[Ledger, LedgerWorker] = weakref.WeakKeyDictionary()
_WORKERS_LOCK = threading.Lock()
_LIVE: weakref.WeakSet[LedgerWorker] = weakref.WeakSet()  # every worker, for forks


def _after_fork_in_child() -> None:
    """A parent's thread may have held a worker's lock at the fork: every lock is new."""
    global _WORKERS_LOCK
    _WORKERS_LOCK = threading.Lock()
    for worker in list(_LIVE):
        worker._start_afresh()


os.register_at_fork(after_in_child=_after_fork_in_child)


class LedgerWorker:
    """One thread that writes ``ledger`` for coroutines (see the module docstring).

    The worker holds the ledger weakly, and its thread ends after ``IDLE_SECONDS``
    without work (the next write starts another): neither outlives its use.
    """

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = weakref.ref(ledger)
        self._retry: list[tuple[float, _Item]] = []  # (next try, write) held for the database
        self._tries: dict[int, tuple[float, int]] = {}  # id(write): (give up at, tries)
        self._queue: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._done = threading.Condition()
        self._queued = self._finished = 0  # writes queued, and done, in this process so far
        self._holding: Ledger | None = None  # the ledger, held while writes wait for it
        self._hurry = threading.Event()  # someone waits: a lingering write goes now
        self.batches = 0  # transactions run, for tests and benchmarks
        _LIVE.add(self)

    @classmethod
    def for_ledger(cls, ledger: Ledger) -> LedgerWorker:
        """The worker of ``ledger``, shared by every client using it."""
        with _WORKERS_LOCK:
            worker = _WORKERS.get(ledger)
            if worker is None:
                worker = _WORKERS[ledger] = cls(ledger)
            return worker

    async def call(self, write: LedgerWrite) -> Any:
        """``await`` what ``ledger.run_batch([write], announce=False)`` gives for it
        (returned, or raised): for a settlement, the alerts it fired, to announce."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future = loop.create_future()
        self._submit((write, loop, future))
        try:
            return await future
        except asyncio.CancelledError:
            # Cancelled after the result came but before this coroutine resumed: nobody
            # will take the reservation it may hold, so give it back here.
            if future.done() and not future.cancelled() and future.exception() is None:
                self.release(future.result())
            raise

    def write_later(self, write: LedgerWrite) -> None:
        """Queue ``write``, not awaited.

        Written after every write queued before it (a settlement under way wins over a
        later one for the same row); a failure is logged. See :meth:`drain`.
        """
        self._submit((write, None, None))

    def running(self) -> bool:
        """Whether this process has a writer thread now."""
        thread = self._thread
        return thread is not None and self._pid == os.getpid() and thread.is_alive()

    def pending(self) -> bool:
        """Whether writes queued in this process are not done yet."""
        return self._finished < self._queued and self._pid == os.getpid()

    def drain(self, timeout: float = DRAIN_SECONDS) -> bool:
        """Wait until as many writes are done as were queued so far (writes queued later
        do not hold it up); False if ``timeout`` passed first.

        On the writer thread itself (an alert callback reading the ledger) it returns at
        once: that thread cannot wait for its own work."""
        if threading.current_thread() is self._thread:
            return False
        self._hurry.set()
        with self._done:
            target = self._queued
            return self._done.wait_for(lambda: self._finished >= target, timeout)

    def _start_afresh(self) -> None:
        """In a forked child: the parent's lock, queue and thread are not ours."""
        self._lock, self._pid = threading.Lock(), os.getpid()
        self._queue, self._thread, self._retry, self._tries = queue.SimpleQueue(), None, [], {}
        self._done, self._queued, self._finished = threading.Condition(), 0, 0
        self._holding, self._hurry = None, threading.Event()

    def _submit(self, item: _Item) -> None:
        with self._lock:
            if self._pid != os.getpid():  # forked: the parent's queue and thread are not ours
                self._start_afresh()  # (a new lock too: this one is let go of right after)
        _drained_when_this_process_ends()
        with self._done:
            self._queued += 1
            # A client dropped right after its call may leave nothing else holding the
            # ledger: its settlement must still be written.
            self._holding = self._ledger()
        self._queue.put(item)
        if item[2] is not None or self._queued - self._finished >= MAX_BATCH:
            self._hurry.set()  # awaited, or a full transaction's worth: no lingering
        with self._lock:  # after the put: a thread that is leaving has seen the queue empty
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._serve, name="leadfactory-ledger-writer", daemon=True
                )
                self._thread.start()

    def _serve(self) -> None:
        while True:
            due = self._retry[0][0] - time.monotonic() if self._retry else IDLE_SECONDS
            try:  # a write held back for the database first, once it is due again
                first = self._retry.pop(0)[-1] if due <= 0 else self._queue.get(timeout=due)
            except queue.Empty:
                if not self._retry:
                    with self._lock:
                        if self._queue.empty():  # nothing came: leave; _submit starts another
                            self._thread = None
                            return
                continue
            if due > 0 and first[2] is None:  # nobody awaits it: let others join it
                self._hurry.wait(LINGER_SECONDS)
            self._hurry.clear()
            batch = [first]
            while len(batch) < MAX_BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            ledger = self._ledger()
            try:
                if ledger is None:
                    raise RuntimeError("the ledger was closed and collected")
                writes = [write for write, _, _ in batch]
                # Alerts come back with their settlement: the awaiting coroutine announces
                # them on its own loop, so a slow callback never holds up this thread.
                results: list[Any] = ledger.run_batch(writes, announce=False)
            except BaseException as exc:  # the transaction failed: every write in it did
                results = [exc] * len(batch)
            self.batches += 1
            batch, results = self._held_for_retry(batch, results)
            self._deliver(ledger, batch, results)
            del ledger
            with self._done:
                self._finished += len(batch)
                if self._finished >= self._queued:  # nothing waits: the ledger may go
                    self._holding = None
                self._done.notify_all()

    def _held_for_retry(
        self, batch: list[_Item], results: list[Any]
    ) -> tuple[list[_Item], list[Any]]:
        """Put aside the writes nobody awaits that failed for want of the database, to
        try again later (until ``RETRY_SECONDS`` after their first failure); the rest."""
        kept: list[tuple[_Item, Any]] = []
        now = time.monotonic()
        for item, result in zip(batch, results, strict=True):
            give_up, tries = self._tries.pop(id(item), (now + RETRY_SECONDS, 0))
            if item[1] is None and isinstance(result, LLMLedgerUnavailableError) and now < give_up:
                self._tries[id(item)] = (give_up, tries + 1)
                delay = RETRY_DELAYS[min(tries, len(RETRY_DELAYS) - 1)]
                self._retry.append((now + delay, item))
                self._retry.sort(key=lambda entry: entry[0])
            else:
                kept.append((item, result))
        return [item for item, _ in kept], [result for _, result in kept]

    def _deliver(self, ledger: Ledger | None, batch: list[_Item], results: list[Any]) -> None:
        """Hand each result to its coroutine (one wake-up per event loop per batch);
        announce the alerts of the settlements nobody awaits."""
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future, Any]]] = {}
        for (_, loop, future), result in zip(batch, results, strict=True):
            if loop is None or future is None:
                # (a ValueError: a settlement found its row settled by the one under way)
                if isinstance(result, BaseException) and not isinstance(result, ValueError):
                    log_event(logging.WARNING, f"ledger write failed: {result}")
                elif isinstance(result, list) and ledger is not None:
                    _announce(ledger, result)
            else:
                by_loop.setdefault(loop, []).append((future, result))
        for loop, pairs in by_loop.items():
            try:
                loop.call_soon_threadsafe(_resolve, pairs, self)
            except RuntimeError:  # the loop has closed: nobody is waiting
                for _, result in pairs:
                    self.release(result)

    def release(self, result: Any) -> None:
        """Give back a reservation whose caller was cancelled while it was being made."""
        if isinstance(result, Reservation):
            self._submit((Release(result), None, None))


def _announce(ledger: Ledger, alerts: list[BudgetAlert]) -> None:
    for alert in alerts:
        try:
            ledger.announce(alert)
        except Exception as error:  # a failing callback must not stop the writer thread
            log_event(logging.WARNING, f"budget alert callback failed: {type(error).__name__}")


def _resolve(pairs: list[tuple[asyncio.Future, Any]], worker: LedgerWorker) -> None:
    for future, result in pairs:
        if future.cancelled():
            worker.release(result)
        elif isinstance(result, BaseException):
            future.set_exception(result)
        else:
            future.set_result(result)


@atexit.register
def _drain_all() -> None:
    """At exit, let the writes nobody awaits (settlements) land first."""
    with _WORKERS_LOCK:
        workers = list(_WORKERS.values())
    for worker in workers:
        if worker.running():
            worker.drain()


_FINALIZED_IN: int | None = None  # the process whose multiprocessing exit drains the writes


def _drained_when_this_process_ends() -> None:
    """A ``multiprocessing`` child ends with ``os._exit``, which skips ``atexit``: its
    exit function runs finalizers instead, so one is registered in each process that
    queues a write (multiprocessing is imported only then)."""
    global _FINALIZED_IN
    if os.getpid() == _FINALIZED_IN:
        return
    _FINALIZED_IN = os.getpid()
    from multiprocessing import util

    util.Finalize(None, _drain_all, exitpriority=100)


F = TypeVar("F", bound=Callable[..., Any])


def after_queued_writes(read: F) -> F:
    """A ledger method that first waits for the writes this process queued for the
    ledger (up to ``DRAIN_SECONDS``): a report reads its own settlements."""

    @functools.wraps(read)
    def reading(ledger: Any, *args: Any, **kwargs: Any) -> Any:
        worker = _WORKERS.get(ledger)
        if worker is not None and worker.pending():
            worker.drain()
        return read(ledger, *args, **kwargs)

    return reading  # type: ignore[return-value]
