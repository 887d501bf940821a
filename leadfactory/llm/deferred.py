"""The sync client's reservation read just before its request leaves, not before LiteLLM
starts building it.

On a ledger that can (:class:`~leadfactory.llm.ledger.StartsReservations`: PostgreSQL),
the driver sends the flow's :class:`~leadfactory.llm.ledger.Reserve` and answers the flow
with a :class:`~leadfactory.llm.flow.Deferred` at once. LiteLLM then builds the request
(milliseconds of the client's own work) while the reservation travels and the server
checks it; the transport reads the answer before the first byte is sent
(:func:`.http_clients.checked_before_sending`), and a refusal stops the request there.
The call costs the client the reservation's Python work, not its round trip.

Nothing the budgets promise changes: no request leaves before its reservation is
committed and checked, and a refused request is never sent. The flow reads the
reservation's outcome from the :class:`Deferred` when its :class:`~.flow.Call` is
answered (a refusal: skipped, as a refused reservation always is). A reservation the
flow never got to use (interrupted before its call) is given back here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import providers
from .exceptions import LLMQuotaExceededError
from .flow_types import Deferred, Outcome
from .ledger import Ledger, PendingReservation, Release, Reserve, StartsReservations
from .perform import asked_again, write_ledger

__all__ = ["Deferral", "call_provider", "start"]


class _NotConfirmed(Exception):
    """Raised in the transport to stop a request whose reservation was refused."""


class Deferral:
    """One reservation sent by the sync driver, read before its request leaves."""

    def __init__(self, ledger: Ledger, write: Reserve, pending: PendingReservation) -> None:
        self.ledger, self.write, self.pending = ledger, write, pending
        self.deferred = Deferred()  # what the flow holds

    def confirm(self) -> Outcome:
        """The reservation's outcome, read the first time (a refusal while this process
        has settlements queued is asked again once they are written, as always)."""
        if self.deferred.outcome is None:
            try:
                outcome = Outcome(value=self.pending.result())
            except LLMQuotaExceededError as refusal:
                outcome = asked_again(self.ledger, self.write, refusal)
            except Exception as error:
                outcome = Outcome(error=error)
            self.deferred.outcome = outcome
        return self.deferred.outcome

    def before_send(self) -> None:
        """The transport's check: the request leaves only once its reservation holds."""
        if self.confirm().error is not None:
            raise _NotConfirmed("the reservation was refused: the request is not sent")

    def give_back(self) -> None:
        """Release the reservation if the flow never called with it (never sent)."""
        if self.deferred.outcome is not None:
            return  # read by the call: the flow settles or releases it
        reserved = self.confirm()
        if reserved.error is None:
            write_ledger(self.ledger, Release(reserved.value))


def start(ledger: Ledger, write: Reserve) -> Deferral | None:
    """``write`` sent, to be read before its request leaves; None when the ledger cannot
    (the driver then writes it as any other write)."""
    if not isinstance(ledger, StartsReservations):
        return None
    try:
        pending = ledger.start_reservation(write)
    except Exception:  # (the pool closing, say) the write then says what is wrong
        return None
    return None if pending is None else Deferral(ledger, write, pending)


def call_provider(arguments: Mapping[str, Any], deferral: Deferral | None) -> Outcome:
    """One provider call (LiteLLM's exception, if any, in the outcome for the flow to
    classify); with ``deferral``, sent only once its reservation is confirmed, and
    ``Outcome()`` when it was refused (the flow reads why from the Deferred)."""
    try:
        if deferral is None:  # (stand-ins for complete() in tests take the arguments alone)
            outcome = Outcome(response=providers.complete(arguments))
        else:
            outcome = Outcome(response=providers.complete(arguments, deferral.before_send))
    except Exception as error:  # classified by the flow
        outcome = Outcome(error=error)
    finally:  # read whatever happened: the flow needs it, even closing
        refused = deferral is not None and deferral.confirm().error is not None
    return Outcome() if refused else outcome  # refused: never sent, LiteLLM's stop no answer
