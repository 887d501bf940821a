"""What a batch gives back: one :class:`BatchItem` per request, and why it stopped early.

:class:`BatchResults` is a list of each item's response dict or the :class:`LLMError`
it ended with, in input order, with the items' details and the run's totals beside it.
:func:`stop_reason` decides which errors stop a batch: a budget that refuses paid calls
when no free provider could serve (the next items would be refused too).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Literal

from ..exceptions import LLMError, LLMLedgerUnavailableError, LLMQuotaExceededError

__all__ = ["BatchItem", "BatchResults", "LLMBatchNotRunError", "Status", "stop_reason"]

Status = Literal["answered", "resumed", "failed", "not_run"]
STATUSES: tuple[Status, ...] = ("answered", "resumed", "failed", "not_run")
_PERIOD_LIMITS = ("daily_cost_limit", "monthly_cost_limit")


class LLMBatchNotRunError(LLMError):
    """A batch item that was never started: the batch stopped before reaching it.

    ``metadata["stop"]`` says why: ``budget`` (a budget refused paid calls and no free
    provider could serve), ``stop_at_spend`` (the run's spend cap) or ``interrupted``
    (Ctrl-C). Nothing was sent or charged for it; running the batch again runs it.
    """


@dataclass
class BatchItem:
    """One request's outcome: ``response`` (answered or resumed) or ``error``."""

    index: int  # its place in the input
    id: str | None  # the caller's id, else the request's cache key
    status: Status
    response: dict[str, Any] | None = None
    error: LLMError | None = None

    @property
    def result(self) -> dict[str, Any] | LLMError:
        """The response dict, or the error the item ended with."""
        return self.response if self.response is not None else self.error  # type: ignore[return-value]


class BatchResults(list):
    """Each item's response dict or LLMError, in input order (a list), and the run's details.

    ``items`` are the :class:`BatchItem` records in the same order; ``stopped`` says why
    the batch stopped before running every item (None: it did not); ``spent`` is what
    this call's answers cost, ``run_spent`` what the named run's stored answers cost in
    all (this call's included).
    """

    def __init__(
        self,
        items: list[BatchItem],
        *,
        stopped: str | None = None,
        spent: float = 0.0,
        run_spent: float = 0.0,
    ) -> None:
        super().__init__(item.result for item in items)
        self.items = items
        self.stopped, self.spent, self.run_spent = stopped, spent, run_spent

    def counts(self) -> dict[str, int]:
        """How many items were answered, resumed (answered by an earlier run), failed,
        and not run."""
        tally = Counter(item.status for item in self.items)
        return {status: tally[status] for status in STATUSES}

    def __repr__(self) -> str:
        counts = ", ".join(f"{n} {status}" for status, n in self.counts().items() if n)
        stopped = f", stopped: {self.stopped}" if self.stopped else ""
        return f"BatchResults({len(self.items)} items: {counts or 'none'}{stopped})"


def stop_reason(error: BaseException) -> str | None:
    """Why ``error`` stops the batch (None: it ends its own item only).

    The flow raises a budget refusal (or the ledger's outage) itself only when every
    paid provider was refused and no free provider was tried; the next item would meet
    the same refusal. A per-request cap (``max_cost_per_request``) stops nothing: a
    smaller request may fit.
    """
    if isinstance(error, LLMQuotaExceededError) and error.metadata.get("limit") in _PERIOD_LIMITS:
        return f"budget: {error}"
    if isinstance(error, LLMLedgerUnavailableError):
        return f"budget: {error}"
    return None
