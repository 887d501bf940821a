"""The fallback loop's retries and waits, driven alone with a fake clock (tests/flow_script.py).

A retryable error retried after the backoff sleeps, up to max_retries; a validation
error never retried; a refused connection failing over at once (but retried on the last
provider); a rate-limited provider waited for within rate_limit_max_wait, or passed over
for one free now, or refused with its retry-after; a request larger than the token limit
skipped without waiting; a provider's Retry-After pausing it for the next request.
"""

from __future__ import annotations

import pytest

from leadfactory.llm.exceptions import (
    AllProvidersFailedError,
    LLMRateLimitError,
    LLMValidationError,
)
from leadfactory.llm.ratelimit import RateLimiter

from .flow_script import PROMPT_TOKENS, Script, answer, http_error, refused, services

# fixtures, imported so that pytest finds them in this module
from .flow_script import no_litellm as no_litellm

# -- retries ---------------------------------------------------------------------------


def test_a_retryable_error_is_retried_after_the_backoff_sleeps():
    script = Script({"openai": [http_error(503), http_error(503), answer()]})
    response = script.run(services(script, ("openai", "anthropic"), retries=3))
    assert script.calls == ["openai"] * 3
    # retry_delay 0.5: 0.5 x 2**n plus up to 0.5 of jitter
    assert len(script.sleeps) == 2
    assert 0.5 <= script.sleeps[0] <= 1.0
    assert 1.0 <= script.sleeps[1] <= 1.5
    assert [a["outcome"] for a in response["attempts"]] == ["error", "error", "success"]
    assert [r["outcome"] for r in script.ledger.settled] == ["error", "error", "success"]


def test_retries_stop_at_max_retries_then_the_next_provider_answers():
    script = Script({"openai": [http_error(503)] * 3, "anthropic": [answer()]})
    flow_services = services(script, ("openai", "anthropic"), retries=2, max_fallback_attempts=2)
    response = script.run(flow_services)
    assert script.calls == ["openai"] * 3 + ["anthropic"]
    assert len(script.sleeps) == 2
    assert response["provider"] == "anthropic"


def test_a_validation_error_is_not_retried():
    script = Script({"openai": [http_error(400)], "anthropic": [answer()]})
    script.run(services(script, ("openai", "anthropic"), retries=3))
    assert script.calls == ["openai", "anthropic"]
    assert script.sleeps == []


def test_a_refused_connection_fails_over_at_once():
    script = Script({"openai": [refused()], "anthropic": [answer()]})
    response = script.run(services(script, ("openai", "anthropic"), retries=3))
    assert script.calls == ["openai", "anthropic"]
    assert script.sleeps == []
    assert response["attempts"][0]["error"] == "LLMConnectionError"


def test_a_refused_connection_on_the_last_provider_is_retried():
    script = Script({"openai": [refused(), answer()]})
    response = script.run(services(script, ("openai",), retries=1))
    assert script.calls == ["openai", "openai"]
    assert len(script.sleeps) == 1
    assert response["provider"] == "openai"


# -- rate limits -----------------------------------------------------------------------


def limited(script: Script, rpm: int | None = None, tpm: int | None = None) -> RateLimiter:
    limiter = RateLimiter(clock=script.clock)
    limiter.configure("openai", rpm=rpm, tpm=tpm)
    return limiter


def test_a_rate_limited_provider_is_waited_for_within_rate_limit_max_wait():
    script = Script({"openai": [answer("first"), answer("second")]})
    flow_services = services(
        script, ("openai",), limiter=limited(script, rpm=1), rate_limit_max_wait=120
    )
    script.run(flow_services)
    assert script.run(flow_services)["choices"][0]["message"]["content"] == "second"
    assert script.calls == ["openai", "openai"]
    assert script.sleeps == [pytest.approx(60.0 - 0.25)]  # the window, less the first call


def test_a_wait_longer_than_rate_limit_max_wait_raises_with_retry_after():
    script = Script({"openai": [answer()]})
    flow_services = services(
        script, ("openai",), limiter=limited(script, rpm=1), rate_limit_max_wait=10
    )
    script.run(flow_services)
    with pytest.raises(LLMRateLimitError) as caught:
        script.run(flow_services)
    assert caught.value.retry_after == pytest.approx(60.0 - 0.25)
    assert caught.value.metadata["providers"] == ["openai"]
    assert script.calls == ["openai"]
    assert script.sleeps == []


def test_a_rate_limited_provider_is_passed_over_for_one_that_is_free_now():
    script = Script({"openai": [answer()], "anthropic": [answer()]})
    limiter = limited(script, rpm=1)
    flow_services = services(script, ("openai", "anthropic"), limiter=limiter)
    script.run(flow_services)
    response = script.run(flow_services)
    assert script.calls == ["openai", "anthropic"]
    assert response["attempts"][0]["reason"] == "rate_limited"
    assert script.sleeps == []


def test_a_request_larger_than_the_token_limit_is_skipped_without_waiting():
    script = Script({})
    flow_services = services(
        script, ("openai",), limiter=limited(script, tpm=PROMPT_TOKENS), rate_limit_max_wait=600
    )
    with pytest.raises(AllProvidersFailedError) as caught:
        script.run(flow_services)
    assert script.calls == []
    assert script.sleeps == []
    assert caught.value.metadata["attempts"][0]["reason"] == "too_large"
    assert isinstance(caught.value.provider_errors["openai"], LLMValidationError)


def test_a_provider_retry_after_pauses_it_for_the_next_request():
    script = Script({"openai": [http_error(429, retry_after="2"), answer()]})
    flow_services = services(script, ("openai",), rate_limit_max_wait=10)
    with pytest.raises(AllProvidersFailedError) as caught:
        script.run(flow_services)
    assert caught.value.provider_errors["openai"].retry_after == 2.0
    response = script.run(flow_services)
    assert script.calls == ["openai", "openai"]
    assert script.sleeps == [2.0]  # the pause, counted from the 429 answer
    assert response["provider"] == "openai"
