"""One batch run on one event loop: bounded concurrency, stops, resume, progress.

:class:`BatchRun` starts at most ``concurrency`` items at once: that many worker tasks
take the next item in input order until none is left or the run stops. A run stops
starting items when a budget refuses paid calls and no free provider could serve
(:func:`.results.stop_reason`), when the answers' costs reach ``stop_at_spend``, or on
Ctrl-C (SIGINT, on the main thread; a second Ctrl-C aborts as usual); items already
running finish, and the others end as :class:`.results.LLMBatchNotRunError`.

With a ``run`` name, the answers already stored for it are returned without a call,
and each new answer is stored as it comes (in the background, many per transaction).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import Callable
from typing import Any

from ..exceptions import LLMError
from ..ledger.run_store import RunStore
from ..log import log_event
from .items import Item
from .progress import Progress
from .results import BatchItem, BatchResults, LLMBatchNotRunError, stop_reason

__all__ = ["BatchRun"]


class BatchRun:
    """The state of one batch: its items, what finished, what it spent, why it stopped.

    ``on_done`` is called on the loop with each :class:`BatchItem` as it finishes
    (resumed and failed-on-input items first, not-run items last).
    """

    def __init__(
        self,
        client: Any,
        items: list[Item],
        *,
        concurrency: int,
        shown: bool,
        run: str | None,
        store: RunStore | None,
        stop_at_spend: float | None,
        on_done: Callable[[BatchItem], None] | None = None,
    ) -> None:
        self._client, self._items = client, items
        self._concurrency, self._shown = concurrency, shown
        self._run, self._store, self._stop_at_spend = run, store, stop_at_spend
        self._on_done = on_done
        self._finished: dict[int, BatchItem] = {}
        self._next = 0  # the next item a worker takes
        self._queue: list[Item] = []
        self._unstored: list[tuple[str, dict[str, Any]]] = []
        self._storing: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.stopped: str | None = None
        self.stop_kind: str | None = None
        self.spent = 0.0  # this call's answers
        self.run_spent = 0.0  # the run's stored answers (earlier calls) plus this call's
        self._progress: Progress | None = None

    # -- stopping --------------------------------------------------------------------

    def stop(self, kind: str, reason: str) -> None:
        """Start no more items (the first reason given is kept)."""
        if self.stopped is None:
            self.stop_kind, self.stopped = kind, reason
            if self._progress is not None:
                self._progress.note(f"stopping: {reason}; letting running items finish")

    def interrupt_threadsafe(self) -> None:
        """Ctrl-C from another thread (Jupyter's, for a sync map run in a thread)."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(self.stop, "interrupted", "interrupted (Ctrl-C)")

    # -- running ---------------------------------------------------------------------

    async def execute(self) -> BatchResults:
        """Run every item (or until stopped); the results in input order."""
        self._loop = asyncio.get_running_loop()
        stored = await self._stored_answers()
        self.run_spent = sum(float(answer.get("cost") or 0.0) for answer in stored.values())
        self._progress = Progress(len(self._items), shown=self._shown)
        try:
            with self._sigint():
                for item in self._items:
                    if item.error is not None:
                        self._finish(BatchItem(item.index, item.id, "failed", error=item.error))
                    elif item.id in stored:
                        answer = stored[item.id]
                        self._finish(BatchItem(item.index, item.id, "resumed", response=answer))
                    else:
                        self._queue.append(item)
                workers = min(self._concurrency, len(self._queue))
                await asyncio.gather(*(self._worker() for _ in range(workers)))
        finally:
            await self._store_rest()
            self._progress.close()
        for item in self._queue[self._next :]:  # never started
            error = LLMBatchNotRunError(
                f"not run: the batch stopped ({self.stopped})",
                metadata={"stop": self.stop_kind, "reason": self.stopped},
            )
            self._finish(BatchItem(item.index, item.id, "not_run", error=error))
        items = [self._finished[item.index] for item in self._items]
        return BatchResults(items, stopped=self.stopped, spent=self.spent, run_spent=self.run_spent)

    async def _worker(self) -> None:
        while self.stopped is None and self._next < len(self._queue):
            if self._stop_at_spend is not None and self.run_spent >= self._stop_at_spend:
                self.stop(
                    "stop_at_spend",
                    f"stop_at_spend: the run spent ${self.run_spent:.6f} of"
                    f" ${self._stop_at_spend:.6f}",
                )
                break
            item = self._queue[self._next]
            self._next += 1
            self._finish(await self._call(item))

    async def _call(self, item: Item) -> BatchItem:
        try:
            response = await self._client.achat_completion(**item.arguments)
        except LLMError as error:
            if (reason := stop_reason(error)) is not None:
                self.stop("budget", reason)
                return BatchItem(item.index, item.id, "not_run", error=error)
            return BatchItem(item.index, item.id, "failed", error=error)
        except (TypeError, ValueError) as error:  # arguments chat_completion does not take
            wrapped = LLMError(f"item {item.index}: {error}", metadata={"index": item.index})
            return BatchItem(item.index, item.id, "failed", error=wrapped)
        cost = float(response.get("cost") or 0.0)
        self.spent += cost
        self.run_spent += cost
        if self._store is not None and item.id is not None:
            self._unstored.append((item.id, response))
            if self._storing is None or self._storing.done():
                self._storing = asyncio.create_task(self._store_pending())
        return BatchItem(item.index, item.id, "answered", response=response)

    def _finish(self, done: BatchItem) -> None:
        self._finished[done.index] = done
        if self._progress is not None:
            self._progress.advance(failed=done.status == "failed", spent=self.spent)
        if self._on_done is not None:
            self._on_done(done)

    # -- the run store -----------------------------------------------------------------

    async def _stored_answers(self) -> dict[str, dict[str, Any]]:
        if self._store is None or self._run is None:
            return {}
        return await asyncio.to_thread(self._store.answers, self._run)

    async def _store_pending(self) -> None:
        """Store the answers not stored yet, many per transaction, off the loop."""
        assert self._store is not None and self._run is not None
        while self._unstored:
            answers, self._unstored = self._unstored, []
            try:
                await asyncio.to_thread(self._store.record, self._run, answers)
            except Exception as error:  # the answers are still returned; a rerun asks again
                log_event(
                    logging.WARNING,
                    f"batch run {self._run!r}: {len(answers)} answers not stored ({error!r});"
                    " a rerun of the run asks for them again",
                )

    async def _store_rest(self) -> None:
        if self._storing is not None:
            await asyncio.shield(self._storing)
        if self._unstored:
            await self._store_pending()

    # -- Ctrl-C ------------------------------------------------------------------------

    @contextlib.contextmanager
    def _sigint(self) -> Any:
        """On the main thread: the first Ctrl-C stops the batch, a second one aborts."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = signal.getsignal(signal.SIGINT)
        loop = asyncio.get_running_loop()

        presses: list[int] = []

        def on_sigint(signum: int, frame: Any) -> None:
            presses.append(signum)
            if len(presses) > 1:  # the second Ctrl-C: abort as before
                signal.signal(signal.SIGINT, previous)
                if callable(previous):
                    previous(signum, frame)
                    return
                raise KeyboardInterrupt
            loop.call_soon_threadsafe(self.stop, "interrupted", "interrupted (Ctrl-C)")

        signal.signal(signal.SIGINT, on_sigint)
        try:
            yield
        finally:
            if signal.getsignal(signal.SIGINT) is on_sigint:
                signal.signal(signal.SIGINT, previous)
