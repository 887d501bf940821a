"""What a faulty provider sends: error bodies per wire protocol, and misbehaving answers.

:class:`Fault` names every fault; the error faults' status codes, vendor error types and
messages are tables here, and :func:`misbehave` spoils a good answer's usage or choices.
Pure functions: nothing here touches a socket (see :mod:`.server`).
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any

PROTOCOLS = ("openai", "anthropic", "ollama")

Response = tuple[int, str, bytes, dict[str, str]]  # status, content type, body, extra headers


class Fault(StrEnum):
    """What a provider does with its next requests (see :meth:`Simulator.set_fault`)."""

    OK = "ok"
    REFUSE = "refuse"
    RESET = "reset"
    HANG = "hang"
    DELAY = "delay"
    TRICKLE = "trickle"  # the answer, one byte every ``delay`` seconds
    RATE_LIMIT = "rate_limit"
    INSUFFICIENT_QUOTA = "insufficient_quota"
    BAD_REQUEST = "400"
    UNAUTHORIZED = "401"
    FORBIDDEN = "403"
    NOT_FOUND = "404"
    SERVER_ERROR = "500"
    UNAVAILABLE = "503"
    MALFORMED = "malformed"
    TRUNCATED = "truncated"
    ECHO_HEADERS = "echo_headers"  # a 400 quoting the request's headers, as some gateways do
    # A 200 answer whose usage or choices misbehave (see misbehave()).
    NO_USAGE = "no_usage"
    NEGATIVE_USAGE = "negative_usage"
    HUGE_USAGE = "huge_usage"
    ABSURD_USAGE = "absurd_usage"
    EMPTY_CHOICES = "empty_choices"
    # Refusals, with each vendor's real body (see refusals.py).
    CONTEXT_LENGTH = "context_length"
    CONTENT_POLICY = "content_policy"
    POLICY_STOP = "policy_stop"  # a 200 answer stopped by the content filter, no text


IRE, _QUOTA = "invalid_request_error", "insufficient_quota"
# fault: (status, OpenAI error type, OpenAI error code, Anthropic error type)
ERRORS: dict[Fault, tuple[int, str, str | None, str]] = {
    Fault.RATE_LIMIT: (429, "requests", "rate_limit_exceeded", "rate_limit_error"),
    Fault.INSUFFICIENT_QUOTA: (429, _QUOTA, _QUOTA, _QUOTA),
    Fault.BAD_REQUEST: (400, IRE, None, IRE),
    Fault.ECHO_HEADERS: (400, IRE, None, IRE),
    Fault.UNAUTHORIZED: (401, IRE, "invalid_api_key", "authentication_error"),
    Fault.FORBIDDEN: (403, IRE, None, "permission_error"),
    Fault.NOT_FOUND: (404, IRE, "model_not_found", "not_found_error"),
    Fault.SERVER_ERROR: (500, "server_error", None, "api_error"),
    Fault.UNAVAILABLE: (503, "server_error", None, "overloaded_error"),  # Anthropic really uses 529
}
# fault: (OpenAI, Anthropic, Ollama) error message; {model} is filled in
_MESSAGES: dict[Fault, tuple[str, str, str]] = {
    Fault.RATE_LIMIT: (
        "Rate limit reached for {model} in organization org-sim on requests per min (RPM): "
        "Limit 3, Used 3, Requested 1. Please try again in 20s.",
        "Number of requests has exceeded your per-minute rate limit.",
        "rate limit exceeded",
    ),
    Fault.INSUFFICIENT_QUOTA: (
        "You exceeded your current quota, please check your plan and billing details.",
        "Your credit balance is too low to access the Anthropic API. "
        "Please go to Plans & Billing to upgrade or purchase credits.",
        "insufficient quota",
    ),
    Fault.ECHO_HEADERS: ("Invalid request headers: {headers}",) * 3,
    Fault.BAD_REQUEST: (
        "Invalid request (simulated).",
        "Invalid request (simulated).",
        "invalid request",
    ),
    Fault.UNAUTHORIZED: (
        "Incorrect API key provided. "
        "You can find your API key at https://platform.openai.com/account/api-keys.",
        "invalid x-api-key",
        "unauthorized",
    ),
    Fault.FORBIDDEN: (
        "You are not allowed to sample from this model",
        "Your API key does not have permission to use the specified resource.",
        "forbidden",
    ),
    Fault.NOT_FOUND: (
        "The model `{model}` does not exist or you do not have access to it.",
        "model: {model}",
        'model "{model}" not found, try pulling it first',
    ),
    Fault.SERVER_ERROR: (
        "The server had an error while processing your request. Sorry about that!",
        "Internal server error",
        "an unknown error was encountered while running the model",
    ),
    Fault.UNAVAILABLE: (
        "The engine is currently overloaded, please try again later.",
        "Overloaded",
        "server busy, please try again.  maximum pending requests exceeded",
    ),
}
MALFORMED_BODIES = {
    "openai": b'{"id": "chatcmpl-broken", "object": "chat.completion", "choices": [',
    "anthropic": b'{"id": "msg_broken", "type": "message", "content": [{"type": "text", ',
    "ollama": b'{"model": "broken", "message": {"role": "assistant", "content": "',
}
_OLLAMA_OPENAI_TYPES = {400: "invalid_request_error", 404: "not_found_error"}


def json_response(status: int, obj: Any) -> Response:
    return status, "application/json", json.dumps(obj).encode(), {}


def vendor_error(protocol: str, status: int, message: str, kind: str, code: str | None) -> Response:
    """An error body shaped as ``protocol`` shapes it (``kind`` is the error type)."""
    if protocol == "openai":
        return json_response(
            status, {"error": {"message": message, "type": kind, "param": None, "code": code}}
        )
    if protocol == "anthropic":
        return json_response(status, {"type": "error", "error": {"type": kind, "message": message}})
    return json_response(status, {"error": message})


def error_response(
    protocol: str,
    fault: Fault,
    model: str,
    shape: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """The answer to an error fault, from the tables above.

    ``shape`` is the body's wire format when it differs from the protocol's: Ollama's
    OpenAI-compatible ``/v1`` routes answer with Ollama's messages in OpenAI's shape.
    ``headers`` are the request's, which ECHO_HEADERS quotes back.
    """
    status, openai_type, code, anthropic_type = ERRORS[fault]
    message = _MESSAGES[fault][PROTOCOLS.index(protocol)]
    message = message.format(model=model, headers=json.dumps(headers or {}))
    kind = anthropic_type if protocol == "anthropic" else openai_type
    if protocol == "ollama":  # Ollama's /v1 errors: a type by status, never a code
        kind, code = _OLLAMA_OPENAI_TYPES.get(status, "api_error"), None
    return vendor_error(shape or protocol, status, message, kind, code)


# What each usage fault reports, per count (None: the count is left out). ABSURD is a
# plausible-looking figure no request with a small max_tokens could produce.
_USAGE = {
    Fault.NEGATIVE_USAGE: -5,
    Fault.HUGE_USAGE: 10**30,
    Fault.ABSURD_USAGE: 2 * 10**12,
}
USAGE_FAULTS = frozenset({Fault.NO_USAGE, *_USAGE})
ANSWER_FAULTS = frozenset({*USAGE_FAULTS, Fault.EMPTY_CHOICES})


def misbehave(shape: str, fault: Fault, answer: dict[str, Any]) -> dict[str, Any]:
    """``answer`` (a non-streamed JSON answer in ``shape``'s format) spoilt as ``fault`` says.

    NO_USAGE leaves the counts out; the other usage faults put their figure in the
    completion count (``output_tokens`` for Anthropic, ``eval_count`` for Ollama's native
    API) and the total. EMPTY_CHOICES answers ``"choices": []`` in OpenAI's shape; the
    other shapes have no choices, so their answer text is emptied instead.
    """
    answer = dict(answer)
    if shape == "openai":
        if fault is Fault.EMPTY_CHOICES:
            return {**answer, "choices": []}
        if fault is Fault.NO_USAGE:
            del answer["usage"]
            return answer
        count = _USAGE[fault]
        total = answer["usage"]["prompt_tokens"] + count
        return {
            **answer,
            "usage": {**answer["usage"], "completion_tokens": count, "total_tokens": total},
        }
    if shape == "anthropic":
        if fault is Fault.EMPTY_CHOICES:
            return {**answer, "content": []}
        if fault is Fault.NO_USAGE:
            del answer["usage"]
            return answer
        return {**answer, "usage": {**answer["usage"], "output_tokens": _USAGE[fault]}}
    if fault is Fault.EMPTY_CHOICES:  # Ollama's native /api/chat (or /api/generate)
        if "response" in answer:
            return {**answer, "response": ""}
        return {**answer, "message": {"role": "assistant", "content": ""}}
    if fault is Fault.NO_USAGE:  # as Ollama does when the prompt came from its cache
        return {k: v for k, v in answer.items() if k not in ("prompt_eval_count", "eval_count")}
    return {**answer, "eval_count": _USAGE[fault]}
