"""What one pass of the fallback flow reports: ``attempts[]`` entries, and its own errors.

:class:`Walk` collects what happened to each provider during one pass over the order;
the helpers below make the entries of a response's ``attempts`` list and the errors the
flow raises itself (a provider cooling down or rate limited here, no provider at all).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from .config import LLMConfig
from .exceptions import LLMConnectionError, LLMError, LLMRateLimitError, LLMValidationError
from .fit import FIT_REASONS
from .ratelimit import Denied

__all__ = [
    "Walk",
    "all_rate_limited",
    "attempt_entry",
    "cooling_error",
    "no_providers_message",
    "rate_limit_error",
]


@dataclass
class Walk:
    """What happened to each provider during one pass over the order."""

    attempts: list[dict[str, Any]] = field(default_factory=list)
    errors: dict[str, LLMError] = field(default_factory=dict)
    first_error: LLMError | None = None
    budget_refusals: list[LLMError] = field(default_factory=list)  # budget, or ledger down
    rate_limited: list[LLMRateLimitError] = field(default_factory=list)
    misfits: dict[str, LLMValidationError] = field(default_factory=dict)  # see fit.py
    tried: int = 0

    def skip(self, name: str, reason: str, error: LLMError, **figures: Any) -> None:
        """An ``attempts[]`` entry for a provider passed over, with the figures of why."""
        self.attempts.append(
            {
                "provider": name,
                "outcome": "skipped",
                "reason": reason,
                "error": type(error).__name__,
                "detail": str(error),
                "ms": 0.0,
                **figures,
            }
        )
        self.errors[name] = error
        if reason in FIT_REASONS and isinstance(error, LLMValidationError):
            self.misfits[name] = error

    def nothing_fits(self) -> bool:
        """True when no provider was called and every one was passed over as unable to
        take the request (or not configured to be called at all)."""
        reasons = {entry.get("reason") for entry in self.attempts}
        return not self.tried and bool(self.misfits) and reasons <= FIT_REASONS | {"unavailable"}


def attempt_entry(
    name: str, outcome: str, error: LLMError | None, elapsed_ms: float
) -> dict[str, Any]:
    """The ``attempts[]`` entry of one call."""
    entry = {
        "provider": name,
        "outcome": outcome,
        "error": type(error).__name__ if error else None,
        "detail": str(error) if error else None,
        "ms": round(elapsed_ms, 3),
    }
    if error is not None and "retry_after_requested" in error.metadata:  # a capped pause
        entry.update(retry_after_requested=error.metadata["retry_after_requested"])
        entry.update(paused_for=getattr(error, "retry_after", None))
    return entry


def cooling_error(name: str, reason: str) -> LLMError:
    return LLMConnectionError(f"{name}: {reason}", provider=name)


def rate_limit_error(denied: Denied) -> LLMRateLimitError:
    wait = None if math.isinf(denied.wait) else denied.wait
    return LLMRateLimitError(
        f"{denied.provider}: {denied.detail}",
        provider=denied.provider,
        retry_after=wait,
        metadata={"limit": denied.reason},
    )


def all_rate_limited(errors: list[LLMRateLimitError], wait: float) -> LLMRateLimitError:
    names = ", ".join(e.provider or "?" for e in errors)
    return LLMRateLimitError(
        f"Every available provider is rate limited ({names}); retry after {wait:.2f}s",
        retry_after=wait,
        metadata={"providers": [e.provider for e in errors]},
    )


def no_providers_message(config: LLMConfig) -> str:
    if not config.providers:
        return (
            "No providers available: none is configured "
            "(set OPENAI_API_KEY, ANTHROPIC_API_KEY or OLLAMA_HOST)"
        )
    return "No providers available: every configured provider is disabled"
