"""A thread that writes a cache's new answers to its store, off the caller's path.

A cache is not a ledger: an answer lost in a crash costs one more call, nothing else.
So a miss hands its answer to this thread and returns; the answer is in memory at once
(the same process sees it), in the store a moment later, and at the latest when the
cache is closed or the process exits (``atexit``). A forked child starts with no thread
and nothing queued (the parent writes what it queued).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

__all__ = ["WriteBehind"]

IDLE_SECONDS = 1.0  # a writer with no work for this long ends; the next answer starts one
LINGER_SECONDS = 0.1  # a woken writer waits this long, so one transaction takes many answers


class WriteBehind:
    """Call ``flush`` on a background thread ``linger`` seconds after :meth:`wake`.

    Only the first wake of a round signals the thread (one attribute test for the
    others), and everything that arrives while it lingers goes in the same flush.
    """

    def __init__(
        self,
        flush: Callable[[], None],
        *,
        linger: float = LINGER_SECONDS,
        name: str = "leadfactory-llm-cache",
    ) -> None:
        self._flush, self._linger, self._name = flush, linger, name
        self.after_fork()

    def wake(self) -> None:
        """Ask for a flush soon (starting the thread in this process if needed)."""
        if self._requested:  # a flush is already due: it will take this too
            return
        self._requested = True
        self._wake.set()
        thread = self._thread
        if thread is None or self._pid != os.getpid() or not thread.is_alive():
            self._start()

    def stop(self, timeout: float = 10.0) -> None:
        """End the thread after the flush it may be running (the caller flushes the rest)."""
        with self._start_lock:
            thread, self._thread = self._thread, None
        if thread is not None and self._pid == os.getpid() and thread.is_alive():
            self._stop.set()
            self._wake.set()
            thread.join(timeout)
        self._stop = threading.Event()

    def after_fork(self) -> None:
        """Start with no thread (also in a forked child: the parent's is not here)."""
        self._thread, self._pid, self._requested = None, 0, False
        self._wake, self._stop = threading.Event(), threading.Event()
        self._start_lock = threading.Lock()

    def _start(self) -> None:
        with self._start_lock:
            thread = self._thread
            if thread is not None and self._pid == os.getpid() and thread.is_alive():
                return
            self._pid = os.getpid()
            self._thread = threading.Thread(
                target=self._run, args=(self._wake, self._stop), name=self._name, daemon=True
            )
            self._thread.start()

    def _run(self, wake: threading.Event, stop: threading.Event) -> None:
        while wake.wait(IDLE_SECONDS):
            stop.wait(self._linger)
            wake.clear()
            self._requested = False  # before the flush: a later wake means a later flush
            self._flush()
            if stop.is_set():
                return
        # idle: end; a wake() that raced with the timeout starts a new thread
        with self._start_lock:
            if self._thread is threading.current_thread():
                self._thread = None
        if wake.is_set():
            self._start()
