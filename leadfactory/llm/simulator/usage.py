"""Scripted usage: the detailed token counts a simulated provider reports, per request.

By default an answer reports what the simulator counted (words of the prompt and the
reply). ``Simulator.set_usage`` scripts instead what the next answers report, as each
vendor reports it (:func:`with_usage`), so the cost of cached, cache-write and
reasoning tokens can be tested end to end::

    sim.set_usage("openai", Usage(2000, 500, cached_tokens=1200, reasoning_tokens=300))

A script is taken by the generation answers that are not failed (a streamed one
reports it as its vendor streams usage: :func:`.streaming.restated`): a request
answered by an error fault leaves it for the next one. Counts are reported as given,
impossible ones included (that is a test too). Pure, but for the lock of
:class:`UsageScript`: nothing here touches a socket.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Usage", "UsageScript", "with_usage"]


@dataclass(frozen=True)
class Usage:
    """What one answer reports, in OpenAI's terms.

    ``prompt_tokens`` counts every input token, cached or not; ``cached_tokens`` of them
    were read from the prompt cache and ``cache_write_tokens`` written to it;
    ``completion_tokens`` include ``reasoning_tokens``. Each vendor's shape carries what
    that vendor reports:

    - OpenAI: the two counts and the total, ``prompt_tokens_details.cached_tokens``
      and ``completion_tokens_details.reasoning_tokens`` (OpenAI reports no cache
      writes: ``cache_write_tokens`` is left out);
    - Anthropic: ``input_tokens`` (the uncached ones: ``prompt_tokens`` less both cache
      counts), ``cache_read_input_tokens``, ``cache_creation_input_tokens`` and
      ``output_tokens`` (reasoning is billed within it and not reported apart);
    - Ollama: ``prompt_eval_count`` and ``eval_count`` on ``/api/chat`` and
      ``/api/generate``; the two counts and the total on its OpenAI-compatible ``/v1``
      (Ollama has no prompt cache to report).
    """

    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0


class UsageScript:
    """One provider's scripted usages, taken one per answer (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: deque[Usage] = deque()
        self._steady: Usage | None = None

    def set(self, usage: Usage | Sequence[Usage] | None, times: int | None = None) -> None:
        """Script the next answers: ``usage`` for ``times`` answers (None: until cleared),
        or each usage of a sequence for one answer, in order; None clears the script."""
        if times is not None and (type(times) is not int or times < 1):
            raise ValueError("times must be None or at least 1")
        if isinstance(usage, Usage):
            queue, steady = ([usage] * times, None) if times else ([], usage)
        elif usage is None:
            queue, steady = [], None
        else:
            queue, steady = list(usage), None
            if times is not None:
                raise ValueError("times goes with one Usage; a sequence gives one per answer")
        if not all(isinstance(item, Usage) for item in queue):
            raise TypeError("set_usage takes a Usage, a sequence of them, or None")
        with self._lock:
            self._queue, self._steady = deque(queue), steady

    def take(self) -> Usage | None:
        """The usage the next answer reports (None: its own count)."""
        with self._lock:
            return self._queue.popleft() if self._queue else self._steady


def with_usage(protocol: str, shape: str, answer: dict[str, Any], usage: Usage) -> dict[str, Any]:
    """``answer`` (a whole JSON answer in ``shape``'s format) reporting ``usage`` as
    ``protocol``'s vendor does (see :class:`Usage`)."""
    if shape == "anthropic":
        uncached = usage.prompt_tokens - usage.cached_tokens - usage.cache_write_tokens
        return {
            **answer,
            "usage": {
                "input_tokens": uncached,
                "cache_creation_input_tokens": usage.cache_write_tokens,
                "cache_read_input_tokens": usage.cached_tokens,
                "output_tokens": usage.completion_tokens,
            },
        }
    if shape == "ollama":  # the native API
        return {
            **answer,
            "prompt_eval_count": usage.prompt_tokens,
            "eval_count": usage.completion_tokens,
        }
    counts = {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
    }
    if protocol != "ollama":
        counts["prompt_tokens_details"] = {"cached_tokens": usage.cached_tokens, "audio_tokens": 0}
        counts["completion_tokens_details"] = {
            "reasoning_tokens": usage.reasoning_tokens,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        }
    return {**answer, "usage": counts}
