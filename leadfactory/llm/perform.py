"""How the client's drivers perform what the flow asks besides calls: sleeps, ledger writes.

The blocking driver writes on its own thread; the asyncio one on the ledger's writer
thread (:class:`~leadfactory.llm.ledger.LedgerWorker`), so the event loop never waits
for the disk or the database. Either way the result (or the error) goes back to the flow
as an :class:`~leadfactory.llm.flow.Outcome`. A ledger that ``settles_in_background``
gets its settlements, releases and cache-hit rows queued on its writer thread, not
waited for (see :mod:`leadfactory.llm.ledger.writer`); a reservation refused while
writes of this process are queued waits for them and is asked once more, so a budget
refused only because a settled call still counted at its worst case is not refused.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from .exceptions import LLMQuotaExceededError
from .flow import Outcome, Sleep
from .ledger import (
    CacheHit,
    Ledger,
    LedgerWorker,
    LedgerWrite,
    Release,
    Reserve,
    Settle,
    UntrackedLedger,
)

__all__ = ["aperform", "asked_again", "awrite_ledger", "perform", "write_ledger"]


def perform(
    ledger: Ledger, sleep: Callable[[float], None], operation: Sleep | LedgerWrite
) -> Outcome | None:
    """A sleep or a ledger write, done on this thread."""
    if isinstance(operation, Sleep):
        sleep(operation.seconds)
        return None
    return write_ledger(ledger, operation)


async def aperform(ledger: Ledger, operation: Sleep | LedgerWrite) -> Outcome | None:
    """A sleep or a ledger write, awaited."""
    if isinstance(operation, Sleep):
        await asyncio.sleep(operation.seconds)
        return None
    return await awrite_ledger(ledger, operation)


_QUEUED = (Settle, Release, CacheHit)  # what a ledger settling in the background queues


def queued(ledger: Ledger, write: LedgerWrite) -> bool:
    """Queue ``write`` on the ledger's writer thread when the ledger settles in the
    background and ``write`` is a settlement, a release or a cache hit; whether it did."""
    if not (ledger.settles_in_background and isinstance(write, _QUEUED)):
        return False
    LedgerWorker.for_ledger(ledger).write_later(write)
    return True


def write_ledger(ledger: Ledger, write: LedgerWrite) -> Outcome:
    if queued(ledger, write):
        return Outcome()
    try:
        return Outcome(value=ledger.write(write))
    except LLMQuotaExceededError as refusal:
        return asked_again(ledger, write, refusal)
    except Exception as error:  # a ledger failure the flow raises, or skips
        return Outcome(error=error)


def asked_again(ledger: Ledger, write: LedgerWrite, refusal: LLMQuotaExceededError) -> Outcome:
    """The outcome of a reservation ``refusal`` refused: asked once more when this
    process has settlements queued (they may free the budget), once they are written."""
    worker = LedgerWorker.for_ledger(ledger) if ledger.settles_in_background else None
    if not (isinstance(write, Reserve) and worker is not None and worker.pending()):
        return Outcome(error=refusal)
    worker.drain()
    try:
        return Outcome(value=ledger.write(write))
    except Exception as error:
        return Outcome(error=error)


async def awrite_ledger(ledger: Ledger, write: LedgerWrite) -> Outcome:
    """A ledger write from a coroutine: on the ledger's writer thread, off the loop
    (behind every write queued before it, so a reservation sees their settlements)."""
    if isinstance(ledger, UntrackedLedger):  # nothing to wait for
        return write_ledger(ledger, write)
    if queued(ledger, write):
        return Outcome()
    try:
        value = await LedgerWorker.for_ledger(ledger).call(write)
    except Exception as error:
        return Outcome(error=error)
    if isinstance(write, Settle):  # the alerts it fired, announced here on the loop
        for alert in value or ():
            ledger.announce(alert)
        value = None
    return Outcome(value=value)
