"""``LLMClient.map`` and friends: many requests through one client, as one call.

The methods are a mixin :class:`~leadfactory.llm.client.LLMClient` inherits, so the
client module keeps only its one-request paths; the work is :class:`.runner.BatchRun`'s.
The names follow Python's own: ``map`` (results in input order, like ``Executor.map``)
and ``as_completed`` (results as they finish, like ``asyncio.as_completed``), each with
an ``a``-prefixed asyncio twin as ``chat_completion`` has ``achat_completion``.
"""

from __future__ import annotations

import asyncio
import math
import queue
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any, TypedDict, Unpack

from ..exceptions import LLMValidationError
from ..ledger.run_store import run_store_for
from .blocking import iterate_blocking, run_blocking
from .items import prepare_items
from .progress import shows_progress
from .results import BatchItem, BatchResults
from .runner import BatchRun

__all__ = ["DEFAULT_CONCURRENCY", "BatchMethods", "BatchOptions"]

DEFAULT_CONCURRENCY = 8


class BatchOptions(TypedDict, total=False):
    """The options every batch method takes (see :class:`BatchMethods`)."""

    concurrency: int  # requests in flight at once (DEFAULT_CONCURRENCY)
    progress: bool | None  # the tqdm bar: None shows it when stderr is a terminal
    run: str | None  # the run's name, to resume
    stop_at_spend: float | None  # dollars: no new item once the run's answers cost this


class BatchMethods:
    """Batch methods for :class:`~leadfactory.llm.client.LLMClient` (see docs/batches.md).

    Every method takes ``requests`` (each a messages list, or a dict of
    :meth:`chat_completion` arguments with an optional ``id``) and these options:

    - ``concurrency``: at most this many requests in flight at once (default 8).
    - ``progress``: a tqdm bar on stderr; None (the default) shows it when stderr is a
      terminal.
    - ``run``: a name under which answers are stored beside the ledger; running the same
      name again returns the stored answers without a call and runs only the rest.
    - ``stop_at_spend``: start no new item once the run's answers cost this many dollars
      (the run's earlier calls count); running items still finish.
    """

    async def amap(
        self,
        requests: Iterable[Any],
        **options: Unpack[BatchOptions],
    ) -> BatchResults:
        """Answer every request; the response dicts or LLMErrors in input order.

        One failing item never stops the others. A budget that refuses paid calls when
        no free provider can serve, ``stop_at_spend`` or Ctrl-C stops new items from
        starting: they end as :class:`~leadfactory.llm.batch.LLMBatchNotRunError`.
        """
        batch = self._batch(requests, options)
        return await batch.execute()

    def map(
        self,
        requests: Iterable[Any],
        **options: Unpack[BatchOptions],
    ) -> BatchResults:
        """:meth:`amap` from synchronous code, on a private event loop (on a thread of
        its own when a loop already runs here, as in Jupyter)."""
        batch = self._batch(requests, options)
        return run_blocking(batch.execute, batch.interrupt_threadsafe)

    async def aas_completed(
        self,
        requests: Iterable[Any],
        **options: Unpack[BatchOptions],
    ) -> AsyncIterator[BatchItem]:
        """As :meth:`amap`, but each :class:`BatchItem` as it finishes (``.index`` is its
        place in the input)."""
        done: asyncio.Queue[BatchItem | None] = asyncio.Queue()
        batch = self._batch(requests, options, done.put_nowait)
        task = asyncio.ensure_future(batch.execute())
        task.add_done_callback(lambda _: done.put_nowait(None))
        try:
            while (item := await done.get()) is not None:
                yield item
            task.result()  # raise what the run raised
        finally:
            if not task.done():  # the caller stopped early: stop and let it settle
                batch.stop("interrupted", "the caller stopped reading the results")
                await task

    def as_completed(
        self,
        requests: Iterable[Any],
        **options: Unpack[BatchOptions],
    ) -> Iterator[BatchItem]:
        """:meth:`aas_completed` from synchronous code (the run goes on a worker thread)."""
        handoff: queue.Queue[BatchItem] = queue.Queue()
        batch = self._batch(requests, options, handoff.put)
        return iterate_blocking(batch.execute, handoff, batch.interrupt_threadsafe)

    def _batch(
        self, requests: Iterable[Any], options: BatchOptions, on_done: Any = None
    ) -> BatchRun:
        unknown = set(options) - set(BatchOptions.__annotations__)
        if unknown:
            raise LLMValidationError(
                f"unknown batch option {', '.join(sorted(unknown))}: the options are"
                f" {', '.join(BatchOptions.__annotations__)}",
                metadata={"field": sorted(unknown)[0]},
            )
        concurrency = options.get("concurrency", DEFAULT_CONCURRENCY)
        run, stop_at_spend = options.get("run"), options.get("stop_at_spend")
        _check_options(concurrency, run, stop_at_spend)
        items = prepare_items(self, requests)
        store = None if run is None else run_store_for(self.ledger)  # type: ignore[attr-defined]
        return BatchRun(
            self,
            items,
            concurrency=concurrency,
            shown=shows_progress(options.get("progress")),
            run=run,
            store=store,
            stop_at_spend=stop_at_spend,
            on_done=on_done,
        )


def _check_options(concurrency: Any, run: Any, stop_at_spend: Any) -> None:
    """A bad option is an LLMValidationError before anything runs."""
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise LLMValidationError(
            f"concurrency must be a whole number of at least 1, got {concurrency!r}",
            metadata={"field": "concurrency"},
        )
    if run is not None and (not isinstance(run, str) or not run.strip()):
        raise LLMValidationError(
            f"run must be a non-empty name (a string), got {run!r}", metadata={"field": "run"}
        )
    if stop_at_spend is not None and (
        isinstance(stop_at_spend, bool)
        or not isinstance(stop_at_spend, int | float)
        or not math.isfinite(stop_at_spend)
        or stop_at_spend < 0
    ):
        raise LLMValidationError(
            f"stop_at_spend must be a number of dollars, 0 or more, got {stop_at_spend!r}",
            metadata={"field": "stop_at_spend"},
        )
