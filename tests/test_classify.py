"""classify(): exceptions raised in this process are not provider 500s; messages keep the
provider's text intact. Built from LiteLLM's real exception classes, no network."""

from __future__ import annotations

import errno

import httpx
import pytest

from leadfactory.llm import (
    LLMConnectionError,
    LLMProviderError,
    LLMValidationError,
)
from leadfactory.llm.classify import classify, retry_same_provider

from .conftest import SENTINEL_KEY


def litellm_exceptions():
    """LiteLLM's exception module, imported inside a test: after the autouse fixture has
    set LITELLM_LOCAL_MODEL_COST_MAP, so the import fetches nothing."""
    from litellm import exceptions

    return exceptions


class CassetteMiss(Exception):
    """Stands for vcrpy's CannotOverwriteExistingCassetteException (a test-side error)."""


def raised(error: BaseException) -> BaseException:
    try:
        raise error
    except BaseException as caught:
        return caught


def wrapped_as_litellm_500(inner: BaseException) -> BaseException:
    """What LiteLLM makes of ``inner`` raised inside its HTTP call: a synthetic 500."""
    try:
        try:
            raise inner
        except Exception as exc:
            raise litellm_exceptions().InternalServerError(
                message=f"InternalServerError: OpenAIException - {exc}",
                llm_provider="openai",
                model="gpt-4",
            ) from exc
    except Exception as outer:
        return outer


@pytest.mark.parametrize(
    ("inner", "name"),
    [
        (CassetteMiss("Can't overwrite existing cassette - no match"), "CassetteMiss"),
        (TypeError("'int' object is not iterable"), "TypeError"),
        (KeyError("choices"), "KeyError"),
    ],
)
def test_a_local_exception_is_not_a_provider_500(inner, name):
    error = classify(wrapped_as_litellm_500(inner), "openai")
    assert type(error) is LLMProviderError and error.status_code is None
    assert str(error).startswith("openai: failed in this process, not at the provider: ")
    assert name in str(error) and "HTTP 500" not in str(error)
    assert error.metadata["local_error"].endswith(name)
    assert not retry_same_provider(error)


def test_a_local_error_message_is_redacted():
    inner = CassetteMiss(f"request had Authorization: Bearer {SENTINEL_KEY}")
    error = classify(wrapped_as_litellm_500(inner), "openai", secrets=[SENTINEL_KEY])
    assert SENTINEL_KEY not in str(error) and "[redacted]" in str(error)


def test_a_real_500_response_is_still_a_retried_provider_error():
    request = httpx.Request("POST", "https://api.example.com/v1/chat/completions")
    response = httpx.Response(500, request=request, text='{"error": {"message": "boom"}}')
    status = httpx.HTTPStatusError("500", request=request, response=response)
    # A foreign exception in the context of the real answer does not make it local.
    status.__context__ = CassetteMiss("unrelated")
    error = classify(wrapped_as_litellm_500(status), "openai")
    assert type(error) is LLMProviderError and error.status_code == 500
    assert "local_error" not in error.metadata
    assert retry_same_provider(error)


@pytest.mark.parametrize(
    "inner",
    [
        ConnectionRefusedError(errno.ECONNREFUSED, "refused"),
        OSError(errno.ENETUNREACH, "Network is unreachable"),
    ],
)
def test_os_errors_stay_connection_or_provider_failures(inner):
    error = classify(wrapped_as_litellm_500(inner), "openai")
    assert "local_error" not in error.metadata
    assert isinstance(error, (LLMConnectionError, LLMProviderError))
    assert retry_same_provider(error)


def test_a_bare_litellm_error_is_the_providers():
    """No cause at all: LiteLLM raised it from what the provider sent."""
    error = classify(
        raised(litellm_exceptions().InternalServerError("overloaded", "openai", "gpt-4")), "openai"
    )
    assert type(error) is LLMProviderError and error.status_code == 500
    assert retry_same_provider(error)


@pytest.mark.parametrize(
    ("message", "kept"),
    [
        (
            "OpenAIException - Invalid value - use 'auto' - see the docs",
            "Invalid value - use 'auto' - see the docs",
        ),
        ("BadRequestError: AnthropicException - max_tokens - too large", "max_tokens - too large"),
        ("a provider's own words - with a dash", "a provider's own words - with a dash"),
    ],
)
def test_only_litellms_prefix_is_stripped(message, kept):
    exc = raised(litellm_exceptions().BadRequestError(message, model="m", llm_provider="openai"))
    error = classify(exc, "openai")
    assert isinstance(error, LLMValidationError)
    assert str(error) == f"openai: HTTP 400: {kept}"


def test_the_message_text_decides_nothing():
    """Only structured parts (status, the SDK's body, the HTTP response's JSON) decide:
    a quota code that appears only in a message's text leaves a 429 a rate limit."""
    words = '{"type": "error", "error": {"type": "insufficient_quota"}}'
    exc = raised(
        litellm_exceptions().RateLimitError(
            message=f"AnthropicException - {words}", llm_provider="anthropic", model="claude"
        )
    )
    error = classify(exc, "anthropic")
    assert type(error).__name__ == "LLMRateLimitError" and "error_type" not in error.metadata


def test_the_body_is_found_behind_litellms_synthetic_response():
    """LiteLLM's Anthropic route keeps the real response on the httpx error it wraps."""
    request = httpx.Request("POST", "https://api.anthropic.com/v1/messages")
    body = {"type": "error", "error": {"type": "insufficient_quota", "message": "no credit"}}
    real = httpx.HTTPStatusError(
        "429", request=request, response=httpx.Response(429, request=request, json=body)
    )
    try:
        try:
            raise real
        except httpx.HTTPStatusError as inner:
            raise litellm_exceptions().RateLimitError(
                message="AnthropicException - see the response",
                llm_provider="anthropic",
                model="claude",
            ) from inner
    except Exception as outer:
        exc = outer
    error = classify(exc, "anthropic")
    assert type(error).__name__ == "LLMQuotaExceededError"
    assert error.metadata["error_type"] == "insufficient_quota" and "no credit" in str(error)


def test_an_answer_that_could_not_be_read_is_charged_never_retried():
    from leadfactory.llm.classify import classify, retry_same_provider
    from leadfactory.llm.providers import AnswerNotRead

    try:
        try:
            raise KeyError("usage")
        except KeyError as inner:
            raise AnswerNotRead("KeyError") from inner
    except AnswerNotRead as outer:
        error = classify(outer, "anthropic")
    assert type(error).__name__ == "LLMProviderError"
    assert error.metadata["answered"] is True
    assert "KeyError" in str(error)
    assert not retry_same_provider(error)


def test_litellm_refusal_classes_are_read_as_types():
    exceptions = litellm_exceptions()
    window = exceptions.ContextWindowExceededError(
        message="AnthropicError - prompt is too long", model="claude", llm_provider="anthropic"
    )
    policy = exceptions.ContentPolicyViolationError(
        message="AnthropicError - blocked", model="claude", llm_provider="anthropic"
    )
    from leadfactory.llm import LLMContentPolicyError, LLMContextWindowError

    assert type(classify(raised(window), "anthropic")) is LLMContextWindowError
    assert type(classify(raised(policy), "anthropic")) is LLMContentPolicyError
    assert not retry_same_provider(classify(raised(window), "anthropic"))


@pytest.mark.parametrize(
    ("code", "name"),
    [
        ("context_length_exceeded", "LLMContextWindowError"),
        ("content_policy_violation", "LLMContentPolicyError"),
        (None, "LLMValidationError"),
    ],
)
def test_refusals_are_told_by_the_body_code_never_by_the_message(code, name):
    # The message says "maximum context length" in every case: only the code counts.
    body = {
        "error": {
            "message": "This model's maximum context length is 8192 tokens.",
            "type": "invalid_request_error",
            "param": None,
            "code": code,
        }
    }
    request = httpx.Request("POST", "http://127.0.0.1/v1/chat/completions")
    response = httpx.Response(400, json=body, request=request)
    error = raised(httpx.HTTPStatusError("400", request=request, response=response))
    assert type(classify(error, "openai")).__name__ == name
