"""The async client's ledger writes, done on a thread with group commit.

SQLite calls block, and ``sqlite3`` lets go of the GIL inside each statement, so an
event loop that wrote the ledger itself would both wait for the disk and queue for the
GIL behind every other thread, several times per request. Instead, coroutines hand
their writes to one :class:`LedgerWorker` thread per ledger and await the result; the
thread runs whatever has queued up meanwhile in one transaction
(:meth:`CostLedger.run_batch`), so a hundred concurrent requests share a handful of
COMMITs. A request still returns only after its settlement is committed.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import queue
import threading
import weakref
from typing import Any

from ..log import log_event
from .budget import Reservation
from .sqlite_ledger import CostLedger
from .writes import LedgerWrite, Release

__all__ = ["LedgerWorker"]

MAX_BATCH = 256  # writes per transaction at the most
IDLE_SECONDS = 30.0  # a writer thread with nothing to do for this long ends

# (write, loop, future); no loop and no future for a write nobody awaits
_Item = tuple[LedgerWrite, asyncio.AbstractEventLoop | None, asyncio.Future | None]
_WORKERS: weakref.WeakKeyDictionary[CostLedger, LedgerWorker] = weakref.WeakKeyDictionary()
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

    def __init__(self, ledger: CostLedger) -> None:
        self._ledger = weakref.ref(ledger)
        self._queue: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._done = threading.Condition()
        self._unfinished = 0  # writes queued and not yet delivered
        self.batches = 0  # transactions run, for tests and benchmarks
        _LIVE.add(self)

    @classmethod
    def for_ledger(cls, ledger: CostLedger) -> LedgerWorker:
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

    def drain(self, timeout: float = 5.0) -> bool:
        """Wait until every write queued so far is done; False if ``timeout`` passed first."""
        with self._done:
            return self._done.wait_for(lambda: self._unfinished <= 0, timeout)

    def _start_afresh(self) -> None:
        """In a forked child: the parent's lock, queue and thread are not ours."""
        self._lock, self._pid = threading.Lock(), os.getpid()
        self._queue, self._thread = queue.SimpleQueue(), None
        self._done, self._unfinished = threading.Condition(), 0

    def _submit(self, item: _Item) -> None:
        with self._lock:
            if self._pid != os.getpid():  # forked: the parent's queue and thread are not ours
                self._pid, self._queue, self._thread = os.getpid(), queue.SimpleQueue(), None
                self._done, self._unfinished = threading.Condition(), 0
        with self._done:
            self._unfinished += 1
        self._queue.put(item)
        with self._lock:  # after the put: a thread that is leaving has seen the queue empty
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._serve, name="leadfactory-ledger-writer", daemon=True
                )
                self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=IDLE_SECONDS)
            except queue.Empty:
                with self._lock:
                    if self._queue.empty():  # nothing came: leave; _submit starts another
                        self._thread = None
                        return
                continue
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
            del ledger
            self.batches += 1
            self._deliver(batch, results)
            with self._done:
                self._unfinished -= len(batch)
                self._done.notify_all()

    def _deliver(self, batch: list[_Item], results: list[Any]) -> None:
        """Hand each result to its coroutine: one wake-up per event loop per batch."""
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future, Any]]] = {}
        for (_, loop, future), result in zip(batch, results, strict=True):
            if loop is None or future is None:
                # (a ValueError: a settlement found its row settled by the one under way)
                if isinstance(result, BaseException) and not isinstance(result, ValueError):
                    log_event(logging.WARNING, f"ledger write failed: {result}")
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
    """At exit, let the writes nobody awaits (settlements of cancelled calls) land first."""
    with _WORKERS_LOCK:
        workers = list(_WORKERS.values())
    for worker in workers:
        if worker.running():
            worker.drain(timeout=5.0)
