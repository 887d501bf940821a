"""Checks on a request before anything is spent: no provider call, no ledger row.

Every failure is an :class:`LLMValidationError` whose message names the field and
says what would be accepted; ``metadata["field"]`` holds the field's path.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from .exceptions import LLMValidationError

__all__ = ["GENERATION_PARAMETERS", "check_messages", "check_parameters"]

ROLES = frozenset({"system", "user", "assistant", "tool", "function", "developer"})

# Generation parameters passed through to the provider (they also key the cache).
GENERATION_PARAMETERS = frozenset(
    {
        "top_p",
        "n",
        "stop",
        "presence_penalty",
        "frequency_penalty",
        "seed",
        "response_format",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "logit_bias",
        "logprobs",
        "top_logprobs",
        "user",
        "reasoning_effort",
        "extra_headers",
    }
)


def _fail(field: str, problem: str) -> LLMValidationError:
    return LLMValidationError(f"Invalid {field}: {problem}", metadata={"field": field})


def check_messages(messages: Any) -> list[dict[str, Any]]:
    """The messages as a list of plain dicts, or LLMValidationError naming the bad one."""
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence):
        raise _fail(
            "messages",
            "expected a list of {'role': ..., 'content': ...} dicts, "
            f"got {type(messages).__name__}",
        )
    if not messages:
        raise _fail("messages", "the list is empty; give at least one message")
    checked = []
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(message, Mapping):
            raise _fail(
                where, f"expected a dict with 'role' and 'content', got {type(message).__name__}"
            )
        role = message.get("role")
        if role not in ROLES:
            raise _fail(f"{where}.role", f"{role!r} is not one of {', '.join(sorted(ROLES))}")
        content = message.get("content")
        if content is None:
            if not (role == "assistant" and message.get("tool_calls")):
                raise _fail(f"{where}.content", "is missing; give the message text")
        elif isinstance(content, str):
            pass
        elif isinstance(content, Sequence) and not isinstance(content, bytes):
            for part_index, part in enumerate(content):
                if not isinstance(part, Mapping) or not isinstance(part.get("type"), str):
                    raise _fail(
                        f"{where}.content[{part_index}]",
                        "expected a content part like {'type': 'text', 'text': ...}",
                    )
        else:
            raise _fail(f"{where}.content", f"expected text, got {type(content).__name__}")
        for key in message:
            if not isinstance(key, str):
                raise _fail(where, f"keys must be strings, got {key!r}")
        checked.append(dict(message))
    if all(m["role"] == "system" for m in checked):
        raise _fail("messages", "only system messages; add a user message")
    return checked


def _number(field: str, value: Any, *, low: float, high: float | None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _fail(field, f"expected a number, got {value!r}")
    if value < low or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise _fail(field, f"{value!r} is out of range; use a number {bounds}")
    return float(value)


def check_parameters(
    temperature: Any, max_tokens: Any, extra: Mapping[str, Any]
) -> tuple[float, int, dict[str, Any]]:
    """Temperature, max_tokens and the extra generation parameters, checked."""
    temperature = _number("temperature", temperature, low=0.0, high=2.0)
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int):
        raise _fail("max_tokens", f"expected a whole number, got {max_tokens!r}")
    if max_tokens < 1:
        raise _fail("max_tokens", f"{max_tokens} is too small; use 1 or more")
    unknown = sorted(set(extra) - GENERATION_PARAMETERS)
    if "stream" in extra:
        raise _fail("stream", "streaming is not supported by chat_completion")
    if unknown:
        raise _fail(
            unknown[0],
            f"unknown parameter; accepted: {', '.join(sorted(GENERATION_PARAMETERS))}",
        )
    if "top_p" in extra and extra["top_p"] is not None:
        _number("top_p", extra["top_p"], low=0.0, high=1.0)
    if extra.get("n") not in (None, 1):
        raise _fail("n", "only one choice per request is supported; use n=1")
    return temperature, max_tokens, {k: v for k, v in extra.items() if v is not None}
