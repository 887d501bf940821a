"""One log line per provider attempt, through loguru and the standard ``logging`` module.

Following both libraries' advice for libraries, nothing is shown unless the
application asks: ``logging.basicConfig(level=logging.DEBUG)`` (or any handler on
the ``leadfactory.llm`` logger) shows the lines through ``logging``, and
``loguru.logger.enable("leadfactory.llm")`` shows them through loguru.
"""

from __future__ import annotations

import logging
from typing import Any

from loguru import logger

__all__ = ["log_attempt", "logger"]

logger.disable("leadfactory.llm")
_stdlib = logging.getLogger("leadfactory.llm")
_stdlib.addHandler(logging.NullHandler())


def _emit(level: int, message: str) -> None:
    if _stdlib.isEnabledFor(level):
        _stdlib.log(level, message)
    logger.opt(depth=2).log(logging.getLevelName(level), message)


def log_attempt(
    *,
    provider: str,
    latency_ms: float,
    response: dict[str, Any] | None = None,
    error: BaseException | None = None,
    model: str | None = None,
) -> None:
    """Log one attempt: provider, model, outcome, tokens, cost and latency."""
    if response is not None:
        usage = response["usage"]
        _emit(
            logging.INFO,
            f"llm call provider={provider} model={response.get('model') or model} "
            f"outcome=success tokens={usage['prompt_tokens']}+{usage['completion_tokens']} "
            f"cost=${response['cost']:.6f} latency_ms={latency_ms:.1f}",
        )
    else:
        _emit(
            logging.WARNING,
            f"llm call provider={provider} model={model} outcome=error "
            f"error={type(error).__name__} latency_ms={latency_ms:.1f}: {error}",
        )


def log_event(level: int, message: str) -> None:
    """Anything else worth a line (cache hits, cooldowns, budget alerts)."""
    _emit(level, message)
