"""The one place that turns a foreign exception into an :class:`LLMError`.

Decisions read types and HTTP statuses, never message text. LiteLLM's own class
is not trusted on its own (measured with 1.110.2): a refused connection on the
openai/ and anthropic/ routes arrives as ``InternalServerError(500)`` with the
``httpx.ConnectError`` only in the cause chain, a 503 arrives with status 500 and
the real one in ``provider_status_code``, and OpenAI's 403 arrives as
``APIError``. So: transport errors anywhere in the cause chain win, then the
provider's HTTP status, then the error object the provider sent (its ``type`` or
``code`` tells ``insufficient_quota`` from a plain rate limit).

Two refusals are told apart from other 4xx answers (:func:`_refusal_class`): a prompt
too long for the model (:class:`LLMContextWindowError`) and a content-policy refusal
(:class:`LLMContentPolicyError`), from the structured code of the error body (OpenAI's
``context_length_exceeded``, ``content_policy_violation``) or from LiteLLM's own class
(``ContextWindowExceededError``, ``ContentPolicyViolationError``), which it raises for
vendors whose body carries no code (Anthropic's ``prompt is too long``). Ollama's
context-length 400 carries neither: it stays an :class:`LLMValidationError`.

LiteLLM also wraps exceptions raised in this process (vcrpy's cassette miss, a header
the HTTP library refuses to send, a bug in an HTTP client or in LiteLLM itself) as a
synthetic 500. When the cause chain holds neither a transport error nor an HTTP error
response, but an exception from outside the HTTP stack or one of the HTTP stack's own
"refused to send" types (``LOCAL_HTTP_ERRORS``), the result is an ``LLMProviderError``
without a status that names that exception, marked ``metadata["local_error"]``: never
retried, never counted against the provider's health.

The foreign exceptions stay in the chain (the caller raises the result ``from exc``),
with the provider's secret redacted from their texts (:func:`~.redact.redact_chain`).

``RETRY_SAME_PROVIDER`` says which classes are worth another attempt on the same
provider.
"""

from __future__ import annotations

import asyncio
import errno
import json
import re
import socket
import sys
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from .exceptions import (
    LLMAuthenticationError,
    LLMConnectionError,
    LLMContentPolicyError,
    LLMContextWindowError,
    LLMError,
    LLMModelNotFoundError,
    LLMProviderError,
    LLMQuotaExceededError,
    LLMRateLimitError,
    LLMTimeoutError,
    LLMValidationError,
)
from .providers import AnswerNotRead
from .redact import exception_chain, redact, redact_chain

__all__ = ["RETRY_SAME_PROVIDER", "classify", "content_filter_refusal", "retry_same_provider"]

RETRY_SAME_PROVIDER: tuple[type[LLMError], ...] = (LLMConnectionError, LLMProviderError)
"""Failures worth another attempt on the same provider (LLMTimeoutError is a
connection error); every other class moves straight to the next provider."""

_QUOTA_CODES = frozenset({"insufficient_quota", "billing_hard_limit_reached", "billing_error"})
# Structured codes of the two refusals, and LiteLLM's class for each (litellm.exceptions).
_REFUSALS: tuple[tuple[type[LLMError], frozenset[str], str], ...] = (
    (LLMContextWindowError, frozenset({"context_length_exceeded"}), "ContextWindowExceededError"),
    (
        LLMContentPolicyError,
        frozenset({"content_policy_violation", "content_filter"}),
        "ContentPolicyViolationError",
    ),
)


def retry_same_provider(error: BaseException) -> bool:
    """True when ``error`` may succeed if the same provider is asked again.

    An error raised inside this process (``metadata["local_error"]``) never is.
    """
    if isinstance(error, LLMError) and error.metadata.get("local_error"):
        return False
    return isinstance(error, RETRY_SAME_PROVIDER)


def classify(
    exc: BaseException, provider: str | None, secrets: Iterable[str | None] = ()
) -> LLMError:
    """The :class:`LLMError` for ``exc`` raised while calling ``provider``.

    The caller raises the result ``from exc`` so the original stays as ``__cause__``.
    ``secrets`` are scrubbed from the message, and from every exception in ``exc``'s
    chain (in place), so a printed traceback does not show them either.
    """
    if isinstance(exc, LLMError):
        return exc
    secrets = tuple(secrets)
    redact_chain(exc, secrets)
    transport = _transport_error(exc)
    if transport is not None:
        cls, what = transport
        if _refused(exc):  # nothing listens there: the flow fails over without retrying
            what = "connection refused"
            return cls(
                redact(f"{provider}: {what}", secrets),
                provider=provider,
                metadata={"refused": True},
            )
        return cls(redact(f"{provider}: {what}", secrets), provider=provider)

    if isinstance(exc, AnswerNotRead):  # it reached the provider: charged, never retried
        name = _type_name(exc.__cause__ or exc)
        return LLMProviderError(
            f"{provider}: answered, but its answer could not be read in this process ({name})",
            provider=provider,
            metadata={"local_error": name, "answered": True},
        )
    local = _local_error(exc)
    if local is not None:
        name = _type_name(local)
        detail = redact(_strip_prefix(str(local)), secrets)
        return LLMProviderError(
            f"{provider}: failed in this process, not at the provider: {name}: {detail}",
            provider=provider,
            metadata={"local_error": name},
        )

    status = _status_code(exc)
    body = _error_body(exc)
    detail = redact(_provider_message(body) or _strip_prefix(str(exc)), secrets)
    text = f"{provider}: HTTP {status}: {detail}" if status else f"{provider}: {detail}"
    metadata = {"error_type": _error_code(body)} if _error_code(body) else {}
    refusal = _refusal_class(exc, body)
    if refusal is not None:  # not worth asking again; the next provider may take it
        return refusal(text, provider=provider, status_code=status, metadata=metadata)

    if status == 429 or status == 402:
        if status == 402 or _error_code(body) in _QUOTA_CODES:
            return LLMQuotaExceededError(
                text, provider=provider, status_code=status, metadata=metadata
            )
        return LLMRateLimitError(
            text,
            provider=provider,
            retry_after=_retry_after(exc),
            status_code=status,
            metadata=metadata,
        )
    cls = _status_class(status, body)
    return cls(text, provider=provider, status_code=status, metadata=metadata)


def content_filter_refusal(choices: Any, provider: str) -> LLMContentPolicyError | None:
    """The refusal an answer without text is when the provider's content filter stopped
    every choice (``finish_reason`` ``content_filter``, which LiteLLM also makes of
    Anthropic's ``refusal`` stop reason); None otherwise."""
    if not choices or not all(
        isinstance(c, Mapping) and c.get("finish_reason") == "content_filter" for c in choices
    ):
        return None
    return LLMContentPolicyError(
        f"{provider}: its content filter stopped the answer before any text",
        provider=provider,
        metadata={"empty_answer": True, "finish_reason": "content_filter"},
    )


def _refusal_class(exc: BaseException, body: Any) -> type[LLMError] | None:
    """LLMContextWindowError or LLMContentPolicyError when ``exc`` is one of those
    refusals: by the error body's code, or LiteLLM's class anywhere in the chain."""
    code = _error_code(body)
    for cls, known, litellm_name in _REFUSALS:
        litellm_class = tuple(_loaded("litellm.exceptions", litellm_name))
        if code in known or any(isinstance(link, litellm_class) for link in _chain(exc)):
            return cls
    return None


def _status_class(status: int | None, body: Any) -> type[LLMError]:
    if status in (401, 403):
        return LLMAuthenticationError
    if status == 404:
        return LLMModelNotFoundError
    if status == 408:
        return LLMTimeoutError
    if status is not None and 400 <= status < 500:
        if _error_code(body) in _QUOTA_CODES:
            return LLMQuotaExceededError
        return LLMValidationError
    return LLMProviderError  # 5xx, or a broken answer with no status at all


# -- the cause chain ---------------------------------------------------------------


_chain = exception_chain


def _loaded(module: str, *names: str) -> list[type]:
    """The named exception types of ``module``, when it is already imported."""
    found = sys.modules.get(module)
    return [getattr(found, name) for name in names] if found is not None else []


def _transport_types() -> tuple[tuple[tuple[type, ...], type[LLMError], str], ...]:
    """Transport exception types, looked up lazily among modules already loaded."""
    timeouts = (
        TimeoutError,
        socket.timeout,
        asyncio.TimeoutError,
        *_loaded("httpx", "TimeoutException"),
        *_loaded("openai", "APITimeoutError"),
        *_loaded("aiohttp", "ServerTimeoutError"),
    )
    connections = (
        ConnectionError,
        socket.gaierror,
        *_loaded("httpx", "NetworkError", "RemoteProtocolError", "ProxyError"),
        *_loaded("aiohttp", "ClientConnectionError", "ClientPayloadError"),
    )
    return (
        (timeouts, LLMTimeoutError, "timed out"),
        (connections, LLMConnectionError, "connection failed"),
    )


def _refused(exc: BaseException) -> bool:
    """True when the connection was refused (ECONNREFUSED anywhere in the cause chain)."""
    return any(
        isinstance(link, OSError) and link.errno == errno.ECONNREFUSED for link in _chain(exc)
    )


def _transport_error(exc: BaseException) -> tuple[type[LLMError], str] | None:
    table = _transport_types()
    for link in _chain(exc):
        if isinstance(link, json.JSONDecodeError):
            return LLMProviderError, "sent an answer that is not valid JSON"
        for types, cls, what in table:
            if isinstance(link, types):
                return cls, f"{what} ({type(link).__name__})"
    return None


# Packages whose exceptions stand for the provider's answer or the connection to it.
_HTTP_STACK = frozenset(
    {"litellm", "openai", "anthropic", "httpx", "httpcore", "h11", "h2", "aiohttp"}
)


# (module, type names): what the HTTP stack raises when it refuses to send a request
# (a CR/LF in a header, an unsupported URL scheme); nothing reached the provider.
LOCAL_HTTP_ERRORS = (
    ("httpx", ("LocalProtocolError", "UnsupportedProtocol", "InvalidURL")),
    ("httpcore", ("LocalProtocolError", "UnsupportedProtocol")),
    ("h11", ("LocalProtocolError",)),
)


def _local_error(exc: BaseException) -> BaseException | None:
    """The exception raised in this process behind ``exc``, when no HTTP response is.

    Links from LiteLLM and the HTTP clients, OS errors and bare ``Exception`` wrappers
    are passed over, except the HTTP stack's ``LOCAL_HTTP_ERRORS``; any other type
    (vcrpy's, a TypeError...) is local.
    """
    # Raised by an HTTP client for a real response with an error status.
    answered = (*_loaded("httpx", "HTTPStatusError"), *_loaded("aiohttp", "ClientResponseError"))
    refused_to_send = tuple(
        t for module, names in LOCAL_HTTP_ERRORS for t in _loaded(module, *names)
    )
    local = None
    for link in _chain(exc):
        if isinstance(link, answered):
            return None  # the provider did answer, with an error status
        package = type(link).__module__.partition(".")[0]
        wrapper = type(link) in (Exception, BaseException)
        foreign = not (package in _HTTP_STACK or wrapper or isinstance(link, OSError))
        if local is None and (foreign or isinstance(link, refused_to_send)):
            local = link
    return local


def _type_name(exc: BaseException) -> str:
    cls = type(exc)
    return (
        cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    )


# -- what the provider said --------------------------------------------------------


def _status_code(exc: BaseException) -> int | None:
    for attribute in ("provider_status_code", "status_code"):
        value = getattr(exc, attribute, None)
        if isinstance(value, int) and 100 <= value < 600:
            return value
    response = getattr(exc, "response", None)
    value = getattr(response, "status_code", None)
    return value if isinstance(value, int) else None


def _error_body(exc: BaseException) -> Any:
    """The error object the provider sent: the SDK's parsed ``body``, or the JSON of the
    HTTP response, from the first link of the chain that holds one (LiteLLM's own
    exception may carry an empty synthetic response; the httpx error behind it the real
    one). Never parsed out of a message."""
    for link in _chain(exc):
        body = getattr(link, "body", None)
        if isinstance(body, Mapping) and body:
            return body
        decoded = _decode(body) if isinstance(body, str) and body else None
        if decoded is None:
            decoded = _decode(_response_text(link))
        if isinstance(decoded, Mapping):
            return decoded
    return None


def _response_text(link: BaseException) -> str | None:
    response = getattr(link, "response", None)
    try:
        text = response.text if response is not None else None
    except Exception:  # a streamed or synthetic response may not be readable
        return None
    return text if isinstance(text, str) and text else None


def _decode(text: Any) -> Any:
    if not isinstance(text, str):
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def _error_object(body: Any) -> Mapping[str, Any]:
    if isinstance(body, Mapping):
        inner = body.get("error")
        if isinstance(inner, Mapping):
            return inner
        return body
    return {}


def _error_code(body: Any) -> str | None:
    error = _error_object(body)
    for field in ("code", "type"):
        value = error.get(field)
        if isinstance(value, str) and value:
            return value
    return None


def _provider_message(body: Any) -> str | None:
    if isinstance(body, Mapping) and isinstance(body.get("error"), str):
        return body["error"]  # Ollama: {"error": "..."}
    message = _error_object(body).get("message")
    return message if isinstance(message, str) else None


# LiteLLM's own prefix: "litellm.RateLimitError: ", then "RateLimitError: OpenAIException - "
# or "OpenAIException - ". What follows is the provider's, " - " and all.
_LITELLM_PREFIX = re.compile(r"^\s*(?:litellm\.\w+:\s*)?(?:(?:\w+Error:\s*)?\w+Exception - )?")


def _strip_prefix(message: str) -> str:
    """``message`` without LiteLLM's prefix, at most 500 characters."""
    return _LITELLM_PREFIX.sub("", message, count=1).strip()[:500]


def _retry_after(exc: BaseException) -> float | None:
    from .retry_after import retry_after_from_headers

    for headers in _header_sources(exc):
        seconds = retry_after_from_headers(headers)
        if seconds is not None:
            return seconds
    return None


def _header_sources(exc: BaseException) -> Iterator[Any]:
    yield getattr(exc, "litellm_response_headers", None)
    yield getattr(exc, "headers", None)
    response = getattr(exc, "response", None)
    yield getattr(response, "headers", None)
