"""Batch runs: many requests through one client, with bounded concurrency, a progress
bar, spend stops and resume (see docs/batches.md).

:meth:`LLMClient.map` / :meth:`LLMClient.amap` answer a list of requests in input order;
:meth:`LLMClient.as_completed` / :meth:`LLMClient.aas_completed` yield each
:class:`BatchItem` as it finishes. ``leadfactory-llm batch`` runs a JSONL file.
"""

from __future__ import annotations

from ..ledger.run_store import RunStore, run_store_for
from .methods import DEFAULT_CONCURRENCY, BatchMethods, BatchOptions
from .results import BatchItem, BatchResults, LLMBatchNotRunError

__all__ = [
    "DEFAULT_CONCURRENCY",
    "BatchItem",
    "BatchMethods",
    "BatchOptions",
    "BatchResults",
    "LLMBatchNotRunError",
    "RunStore",
    "run_store_for",
]
