"""How the client's drivers perform what the flow asks besides calls: sleeps, ledger writes.

The blocking driver writes on its own thread; the asyncio one on the ledger's writer
thread (:class:`~leadfactory.llm.ledger.LedgerWorker`), so the event loop never waits
for the disk or the database. Either way the result (or the error) goes back to the flow
as an :class:`~leadfactory.llm.flow.Outcome`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from .flow import Outcome, Sleep
from .ledger import Ledger, LedgerWorker, LedgerWrite, Settle, UntrackedLedger

__all__ = ["aperform", "awrite_ledger", "perform", "write_ledger"]


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


def write_ledger(ledger: Ledger, write: LedgerWrite) -> Outcome:
    try:
        return Outcome(value=ledger.write(write))
    except Exception as error:  # a refusal, or a ledger failure the flow raises
        return Outcome(error=error)


async def awrite_ledger(ledger: Ledger, write: LedgerWrite) -> Outcome:
    """A ledger write from a coroutine: on the ledger's writer thread, off the loop."""
    if isinstance(ledger, UntrackedLedger):  # nothing to wait for
        return write_ledger(ledger, write)
    try:
        value = await LedgerWorker.for_ledger(ledger).call(write)
    except Exception as error:
        return Outcome(error=error)
    if isinstance(write, Settle):  # the alerts it fired, announced here on the loop
        for alert in value or ():
            ledger.announce(alert)
        value = None
    return Outcome(value=value)
