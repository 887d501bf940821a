"""Run a batch's coroutine to completion from synchronous code, in a private event loop.

With no event loop running in this thread, the coroutine runs in a new loop here (so
Ctrl-C reaches the batch's own SIGINT handler). Inside a running loop (Jupyter, or a
sync call from async code) a loop cannot be nested: the coroutine runs in a new loop on
a worker thread while this thread waits, and a KeyboardInterrupt raised here (Jupyter's
interrupt) asks the batch to stop, then waits for the running items to settle.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

__all__ = ["iterate_blocking", "run_blocking"]

T = TypeVar("T")
_DONE = object()


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def run_blocking(make: Callable[[], Coroutine[Any, Any, T]], on_interrupt: Callable[[], None]) -> T:
    """``make()``'s coroutine run to completion (see the module docstring)."""
    if not _loop_running():
        return asyncio.run(make())
    outcome: list[Any] = []

    def target() -> None:
        try:
            outcome.append((True, asyncio.run(make())))
        except BaseException as error:  # handed to the waiting thread
            outcome.append((False, error))

    thread = threading.Thread(target=target, name="leadfactory-llm-batch", daemon=True)
    thread.start()
    _wait(thread, on_interrupt)
    ok, value = outcome[0]
    if not ok:
        raise value
    return value


def iterate_blocking(
    make: Callable[[], Coroutine[Any, Any, Any]],
    handoff: queue.Queue[Any],
    on_interrupt: Callable[[], None],
) -> Iterator[Any]:
    """What the coroutine puts in ``handoff`` as it runs on a worker thread's loop, as it
    comes. Leaving early (``break``) asks the batch to stop and waits for it to settle."""
    failure: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(make())
        except BaseException as error:  # raised in the reading thread
            failure.append(error)
        finally:
            handoff.put(_DONE)

    thread = threading.Thread(target=target, name="leadfactory-llm-batch", daemon=True)
    thread.start()
    finished = False
    try:
        while (got := _get(handoff)) is not _DONE:
            yield got
        finished = True
    finally:
        if not finished:
            on_interrupt()
        _wait(thread, on_interrupt)
    if failure:
        raise failure[0]


def _get(handoff: queue.Queue[Any]) -> Any:
    """The next value; waits in short steps, so a KeyboardInterrupt gets through."""
    while True:
        try:
            return handoff.get(timeout=0.1)
        except queue.Empty:
            continue


def _wait(thread: threading.Thread, on_interrupt: Callable[[], None]) -> None:
    """Join ``thread``; a first KeyboardInterrupt meanwhile stops the batch and waiting goes
    on (running items settle); a second one is raised."""
    interrupted = False
    while thread.is_alive():
        try:
            thread.join(0.1)
        except KeyboardInterrupt:
            if interrupted:
                raise
            interrupted = True
            on_interrupt()
