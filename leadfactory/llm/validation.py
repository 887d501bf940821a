"""Checks on a request before anything is spent: no provider call, no ledger row.

Messages follow OpenAI's chat shape: ``role``, ``content`` (text, or a list of content
parts), and for assistant messages ``tool_calls``. Every other value must be plain JSON
(no bytes, sets or NaN), and all text must be encodable as UTF-8 (no lone surrogates).
Headers, ``response_format`` and ``caller`` are checked too: whatever would fail in this
process (in the HTTP library, in LiteLLM, in the ledger) is refused here, before a call.
Every failure is an :class:`LLMValidationError` whose message names the field and says
what would be accepted; ``metadata["field"]`` holds its path.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from .exceptions import LLMValidationError

__all__ = [
    "GENERATION_PARAMETERS",
    "MAX_TOKENS_LIMIT",
    "check_caller",
    "check_messages",
    "check_parameters",
]

ROLES = frozenset({"system", "user", "assistant", "tool", "function", "developer"})

MAX_TOKENS_LIMIT = 2**31 - 1
"""Largest ``max_tokens`` accepted: far above any model's output limit."""

_MAX_DEPTH = 32  # nesting of JSON values in a message or parameter


def _fail(field: str, problem: str) -> LLMValidationError:
    return LLMValidationError(f"Invalid {field}: {problem}", metadata={"field": field})


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _kind(value: Any) -> str:
    return type(value).__name__


# -- plain JSON values ---------------------------------------------------------------------


def _check_text(field: str, text: str) -> str:
    """``text`` if it can be sent as UTF-8: a lone surrogate (``"\\ud800"``) cannot."""
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as error:
            raise _fail(
                field,
                f"has a lone surrogate {text[error.start]!r} at position {error.start}, which "
                "cannot be sent as UTF-8; decode the source text with errors='replace'",
            ) from None
    return text


def _check_json(field: str, value: Any, depth: int = 0) -> None:
    """``value`` can be sent as JSON as it is, or LLMValidationError naming the spot."""
    if depth > _MAX_DEPTH:
        raise _fail(field, f"is nested more than {_MAX_DEPTH} levels deep (a cycle?)")
    if isinstance(value, str):
        _check_text(field, value)
        return
    if value is None or isinstance(value, (bool, int)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _fail(field, f"{value!r} cannot be sent as JSON; use a finite number")
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise _fail(field, f"keys must be strings, got {_show(key)}")
            _check_text(field, key)
            _check_json(f"{field}.{key}", item, depth + 1)
        return
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _check_json(f"{field}[{index}]", item, depth + 1)
        return
    if isinstance(value, (bytes, bytearray, memoryview)):
        raise _fail(field, "bytes cannot be sent as JSON; decode them to str (or base64)")
    if isinstance(value, (set, frozenset)):
        raise _fail(field, "a set cannot be sent as JSON; use a list")
    raise _fail(field, f"a {_kind(value)} cannot be sent as JSON; use str, number, list or dict")


def _check_str(field: str, value: Any, what: str = "text") -> str:
    if not isinstance(value, str):
        raise _fail(field, f"expected {what} (a str), got {_kind(value)}")
    return _check_text(field, value)


# -- messages ------------------------------------------------------------------------------


def _holds_str(value: Any, need: Callable[[Iterable[bool]], bool], *keys: str) -> bool:
    """True when ``value`` is a dict whose ``keys`` (all, or any) are strings."""
    return isinstance(value, Mapping) and need(isinstance(value.get(k), str) for k in keys)


def _image_url(part: Mapping[str, Any]) -> bool:
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, Mapping) else image
    return isinstance(url, str) and bool(url)


# Content part type -> (is the part well formed?, what it needs).
PART_SHAPES: dict[str, tuple[Callable[[Mapping[str, Any]], bool], str]] = {
    "text": (lambda part: isinstance(part.get("text"), str), "'text': str"),
    "image_url": (_image_url, "'image_url': {'url': str} (an https: or data: URL)"),
    "input_audio": (
        lambda part: _holds_str(part.get("input_audio"), all, "data", "format"),
        "'input_audio': {'data': base64 str, 'format': str}",
    ),
    "file": (
        lambda part: _holds_str(part.get("file"), any, "file_id", "file_data"),
        "'file': {'file_id': str} or {'file_data': str}",
    ),
}


def _check_part(field: str, part: Any) -> None:
    if not isinstance(part, Mapping) or "type" not in part:
        raise _fail(field, "expected a content part like {'type': 'text', 'text': ...}")
    kind = part["type"]
    if not isinstance(kind, str) or kind not in PART_SHAPES:
        raise _fail(field, f"part type {_show(kind)} is not one of {', '.join(PART_SHAPES)}")
    well_formed, needs = PART_SHAPES[kind]
    if not well_formed(part):
        raise _fail(field, f"a {kind!r} part needs {needs}")
    _check_json(field, part)


def _check_content(where: str, role: str, content: Any, *, calls: bool) -> None:
    field = f"{where}.content"
    if content is None:
        if role == "assistant" and calls:
            return  # an assistant turn that only calls tools
        raise _fail(field, "is missing; give the message text")
    if isinstance(content, str):
        _check_text(field, content)
        return
    if isinstance(content, (bytes, bytearray, memoryview)):
        raise _fail(field, "is bytes; decode it to str (send images as an image_url part)")
    if not isinstance(content, (list, tuple)):
        raise _fail(field, f"expected text or a list of content parts, got {_kind(content)}")
    if not content:
        raise _fail(field, "the list of content parts is empty; give text or at least one part")
    for index, part in enumerate(content):
        _check_part(f"{field}[{index}]", part)


_TOOL_CALL = "{'id': str, 'type': 'function', 'function': {'name': str, 'arguments': str}}"


def _check_tool_calls(field: str, role: str, calls: Any) -> None:
    if role != "assistant":
        raise _fail(field, f"only assistant messages carry tool_calls, not {role!r} ones")
    if not isinstance(calls, (list, tuple)):
        raise _fail(field, f"expected a list of {_TOOL_CALL}, got {_kind(calls)}")
    for index, call in enumerate(calls):
        where = f"{field}[{index}]"
        function = call.get("function") if isinstance(call, Mapping) else None
        if not (
            isinstance(function, Mapping)
            and isinstance(call.get("id"), str)
            and call.get("type", "function") == "function"
            and isinstance(function.get("name"), str)
            and function["name"]
        ):
            raise _fail(where, f"expected {_TOOL_CALL}")
        if not isinstance(function.get("arguments"), str):
            got = _kind(function.get("arguments"))
            raise _fail(where, f"function.arguments must be JSON text (a str), got {got}")
        _check_json(where, call)


def _check_message(where: str, message: Any) -> dict[str, Any]:
    if not isinstance(message, Mapping):
        raise _fail(where, f"expected a dict with 'role' and 'content', got {_kind(message)}")
    for key in message:
        if not isinstance(key, str):
            raise _fail(where, f"keys must be strings, got {_show(key)}")
        _check_text(where, key)
    role = message.get("role")
    if not isinstance(role, str) or role not in ROLES:
        raise _fail(f"{where}.role", f"{_show(role)} is not one of {', '.join(sorted(ROLES))}")
    calls = message.get("tool_calls")
    if calls is not None:
        _check_tool_calls(f"{where}.tool_calls", role, calls)
    has_calls = bool(calls) or message.get("function_call") is not None
    _check_content(where, role, message.get("content"), calls=has_calls)
    if role == "tool":
        _check_str(f"{where}.tool_call_id", message.get("tool_call_id"), "the id of the call")
    for key, value in message.items():
        if key in ("role", "content", "tool_calls") or value is None:
            continue
        if key in ("name", "tool_call_id"):
            _check_str(f"{where}.{key}", value)
        _check_json(f"{where}.{key}", value)
    return dict(message)


def check_messages(messages: Any) -> list[dict[str, Any]]:
    """The messages as a list of plain dicts, or LLMValidationError naming the bad one."""
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence):
        raise _fail(
            "messages",
            f"expected a list of {{'role': ..., 'content': ...}} dicts, got {_kind(messages)}",
        )
    if not messages:
        raise _fail("messages", "the list is empty; give at least one message")
    checked = [_check_message(f"messages[{i}]", message) for i, message in enumerate(messages)]
    if all(m["role"] == "system" for m in checked):
        raise _fail("messages", "only system messages; add a user message")
    return checked


# -- generation parameters -----------------------------------------------------------------


def _number(field: str, value: Any, *, low: float, high: float | None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(field, f"expected a number, got {_show(value)}")
    bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
    try:
        number = float(value)
    except OverflowError:
        raise _fail(field, f"{_show(value)} is out of range; use a number {bounds}") from None
    if not math.isfinite(number):
        raise _fail(field, f"expected a finite number, got {value!r}")
    if number < low or (high is not None and number > high):
        raise _fail(field, f"{value!r} is out of range; use a number {bounds}")
    return number


def _whole(field: str, value: Any, *, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(field, f"expected a whole number, got {_show(value)}")
    if not low <= value <= high:
        raise _fail(
            field, f"{_show(value)} is out of range; use a whole number from {low} to {high}"
        )
    return value


def _one_choice(field: str, value: Any) -> None:
    if _whole(field, value, low=1, high=MAX_TOKENS_LIMIT) != 1:
        raise _fail(field, "only one choice per request is supported; use n=1")


def _stop(field: str, value: Any) -> None:
    if isinstance(value, str):
        return
    if not isinstance(value, (list, tuple)):
        raise _fail(field, f"expected a str or a list of str, got {_kind(value)}")
    for index, item in enumerate(value):
        _check_str(f"{field}[{index}]", item)


def _flag(field: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise _fail(field, f"expected True or False, got {_show(value)}")


def _logit_bias(field: str, value: Any) -> None:
    if not isinstance(value, Mapping):
        raise _fail(field, f"expected a dict of token id -> bias, got {_kind(value)}")
    for token, bias in value.items():
        if isinstance(token, bool) or not (
            isinstance(token, int) or (isinstance(token, str) and token.isdigit())
        ):
            raise _fail(field, f"token ids are whole numbers, got {_show(token)}")
        _number(f"{field}.{token}", bias, low=-100.0, high=100.0)


_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an RFC 9110 token
_HEADER_VALUE = re.compile(r"[\t\x20-\x7e]*")  # one line of printable ASCII


def _headers(field: str, value: Any) -> None:
    if not isinstance(value, Mapping):
        raise _fail(field, f"expected a dict of header name -> value, got {_kind(value)}")
    for name, header in value.items():
        _check_str(field, name, "a header name")
        if not _HEADER_NAME.fullmatch(name):
            raise _fail(
                field, f"{_show(name)} is not a header name; use letters, digits and '-' only"
            )
        _check_str(f"{field}.{name}", header, "a header value")
        if not _HEADER_VALUE.fullmatch(header):
            bad = next(char for char in header if not _HEADER_VALUE.fullmatch(char))
            raise _fail(
                f"{field}.{name}",
                f"contains {bad!r}; a header value is one line of printable ASCII "
                "(no CR, LF or other control characters; encode other text first)",
            )


def _schema(field: str, value: Any) -> None:
    """A JSON dict, or a pydantic model class whose JSON schema can be generated."""
    if isinstance(value, Mapping):
        _check_json(field, value)
        return
    from pydantic import BaseModel

    if not (isinstance(value, type) and issubclass(value, BaseModel)):
        raise _fail(
            field,
            f"expected a dict such as {{'type': 'json_object'}} or a pydantic model class, "
            f"got {_kind(value)}",
        )
    try:
        value.model_json_schema()
    except Exception as error:  # pydantic's errors for types it cannot describe
        problem = str(error).splitlines()[0] if str(error) else ""
        raise _fail(
            field,
            f"pydantic cannot make a JSON schema from {value.__name__} "
            f"({type(error).__name__}: {problem}); give its fields JSON-describable types",
        ) from None


def _in(low: float, high: float) -> Callable[[str, Any], Any]:
    return lambda field, value: _number(field, value, low=low, high=high)


# Generation parameters passed through to the provider (they also key the cache), each
# with its check; a parameter set to None is left out.
PARAMETER_CHECKS: dict[str, Callable[[str, Any], Any]] = {
    "top_p": _in(0.0, 1.0),
    "n": _one_choice,
    "stop": _stop,
    "presence_penalty": _in(-2.0, 2.0),
    "frequency_penalty": _in(-2.0, 2.0),
    "seed": lambda field, value: _whole(field, value, low=-(2**63), high=2**63 - 1),
    "response_format": _schema,
    "tools": _check_json,
    "tool_choice": _check_json,
    "parallel_tool_calls": _flag,
    "logit_bias": _logit_bias,
    "logprobs": _flag,
    "top_logprobs": lambda field, value: _whole(field, value, low=0, high=20),
    "user": _check_str,
    "reasoning_effort": _check_str,
    "extra_headers": _headers,
}
GENERATION_PARAMETERS = frozenset(PARAMETER_CHECKS)


def check_caller(caller: Any) -> str | None:
    """The ``caller`` tag for the ledger: None or text."""
    if caller is None:
        return None
    return _check_str("caller", caller, "a tag for the ledger such as 'summarise_company'")


def check_parameters(
    temperature: Any, max_tokens: Any, extra: Mapping[str, Any]
) -> tuple[float, int, dict[str, Any]]:
    """Temperature, max_tokens and the extra generation parameters, checked."""
    temperature = _number("temperature", temperature, low=0.0, high=2.0)
    max_tokens = _whole("max_tokens", max_tokens, low=1, high=MAX_TOKENS_LIMIT)
    if "stream" in extra:
        raise _fail("stream", "streaming is not supported by chat_completion")
    unknown = sorted(set(extra) - GENERATION_PARAMETERS)
    if unknown:
        raise _fail(
            unknown[0],
            f"unknown parameter; accepted: {', '.join(sorted(GENERATION_PARAMETERS))}",
        )
    checked = {}
    for name, value in extra.items():
        if value is not None:
            PARAMETER_CHECKS[name](name, value)
            checked[name] = value
    if "logit_bias" in checked:  # JSON object keys are strings; so are the cache's
        checked["logit_bias"] = {str(k): v for k, v in checked["logit_bias"].items()}
    return temperature, max_tokens, checked
