"""Where a named batch run keeps its finished items' answers: the seam a backend fills.

The runs are :mod:`leadfactory.llm.batch`'s.

A run store lives beside the ledger, on the same backend: a ``batch_items`` table in
the SQLite ledger file (:mod:`.sqlite_runs`) or in the PostgreSQL ledger's schema
(:mod:`.postgres_runs`), added by each ledger's migrations. One row per answered item:
the run's name, the item's id, what it cost and the response dict as JSON. A rerun of
the run reads them back and asks no provider for those items.
``tests/contract/test_run_store_contract.py`` is what a backend must pass.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Protocol

from ..exceptions import LLMValidationError

__all__ = ["RunStore", "decode_answer", "encode_answer", "run_store_for"]


class RunStore(Protocol):
    """The answered items of named batch runs."""

    def answers(self, run: str) -> dict[str, dict[str, Any]]:
        """Every stored answer of ``run``: item id to response dict (empty for a new run)."""
        ...

    def record(self, run: str, answers: Sequence[tuple[str, dict[str, Any]]]) -> None:
        """Store ``(item id, response)`` pairs of ``run`` in one transaction (a pair
        already stored is replaced)."""
        ...

    def forget(self, run: str) -> int:
        """Delete ``run``'s answers (its next run starts afresh); returns how many."""
        ...


def encode_answer(response: dict[str, Any]) -> tuple[float, str]:
    """The cost and JSON text a store keeps for ``response``."""
    return float(response.get("cost") or 0.0), json.dumps(response, default=str)


def decode_answer(text: str) -> dict[str, Any]:
    """The response dict a store kept as JSON."""
    return json.loads(text)


def run_store_for(ledger: Any) -> RunStore:
    """The run store beside ``ledger``: same file or database, same connections.

    A ledger that records nothing (``LLM_COST_TRACKING=false``) has nowhere to keep a
    run: naming a run then raises LLMValidationError.
    """
    from .sqlite_ledger import CostLedger

    if isinstance(ledger, CostLedger):
        from .sqlite_runs import SQLiteRunStore

        return SQLiteRunStore(ledger)
    from .postgres import PostgresLedger

    if isinstance(ledger, PostgresLedger):
        from .postgres_runs import PostgresRunStore

        return PostgresRunStore(ledger)
    raise LLMValidationError(
        "run= needs a ledger to keep the run's answers in, and cost tracking is off"
        " (LLM_COST_TRACKING=false): turn it on, or leave out run= (no resume)",
        metadata={"field": "run"},
    )
