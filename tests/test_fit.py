"""Fit-aware fallback, decided alone: check_fit on model facts, and the flow's skips,
refusals and errors, driven by tests/flow_script.py's script (no LiteLLM, no network)."""

from __future__ import annotations

from typing import Any

import pytest

from leadfactory.llm.exceptions import (
    AllProvidersFailedError,
    LLMContextWindowError,
    LLMValidationError,
)
from leadfactory.llm.fit import Needs, Refused, check_fit, request_needs
from leadfactory.llm.provider_config import ModelFacts, ProviderConfig
from leadfactory.llm.ratelimit import Denied, RateLimiter
from tests.flow_script import Script, answer, http_error, make_request, services

# fixtures, imported so that pytest finds them in this module
from tests.flow_script import no_litellm as no_litellm

WINDOW_8K = {"max_input_tokens": 8192, "max_output_tokens": 4096}
WINDOW_128K = {"max_input_tokens": 128_000, "max_output_tokens": 16_384}


def provider(**facts: Any) -> ProviderConfig:
    return ProviderConfig(
        name="p", default_model="custom-model", api_key="k", model_facts={"custom-model": facts}
    )


def fit(facts: dict[str, Any], prompt: int = 100, max_tokens: int = 100, **kw: Any):
    kw.setdefault("needs", Needs())
    kw.setdefault("margin", 0.1)
    return check_fit(provider(**facts), None, prompt, max_tokens, **kw)


# -- check_fit ---------------------------------------------------------------------------


def test_a_prompt_too_long_for_the_window_is_a_context_window_skip():
    result = fit(WINDOW_8K, prompt=10_000, max_tokens=1000)
    assert result.reason == "context_window"
    assert isinstance(result.error, LLMContextWindowError)
    assert result.figures == {
        "estimated_prompt_tokens": 10_000,
        "margin_tokens": 1000,
        "max_tokens": 1000,
        "needed_tokens": 12_000,
        "context_window": 8192,
    }
    assert "8,192" in str(result.error) and "12,000" in str(result.error)


def test_the_margin_keeps_a_prompt_just_under_the_window_from_being_sent():
    assert fit(WINDOW_8K, prompt=7000, max_tokens=1000, margin=0.1).reason == "context_window"
    assert fit(WINDOW_8K, prompt=7000, max_tokens=1000, margin=0.0).reason is None
    assert fit(WINDOW_8K, prompt=7000, max_tokens=1192, margin=0.0).reason is None  # == 8192
    assert fit(WINDOW_8K, prompt=7000, max_tokens=1193, margin=0.0).reason == "context_window"


def test_unknown_facts_never_block():
    result = fit({}, prompt=10_000_000, max_tokens=100_000, needs=Needs(True, True, True))
    assert result.reason is None and result.error is None
    assert result.max_tokens == 100_000 and result.notes() == {}


def test_max_tokens_above_the_output_limit_is_lowered_and_noted():
    result = fit(WINDOW_8K, prompt=100, max_tokens=6000)
    assert result.reason is None and result.max_tokens == 4096
    assert result.notes() == {"max_tokens_requested": 6000, "max_tokens_sent": 4096}
    # the window is checked with what is sent: 100 + 10 + 4096 fits in 8192
    assert fit(WINDOW_8K, prompt=3000, max_tokens=6000).reason is None


@pytest.mark.parametrize(
    ("needs", "fact", "reason"),
    [
        (Needs(tools=True), "supports_tools", "no_tools"),
        (Needs(json_schema=True), "supports_json_schema", "no_json_schema"),
        (Needs(vision=True), "supports_vision", "no_vision"),
    ],
)
def test_a_missing_feature_the_request_uses_is_a_skip(needs, fact, reason):
    result = fit({fact: False}, needs=needs)
    assert result.reason == reason and type(result.error) is LLMValidationError
    assert fact in str(result.error)
    assert fit({fact: True}, needs=needs).reason is None
    assert fit({fact: None}, needs=needs).reason is None  # unknown
    assert fit({fact: False}, needs=Needs()).reason is None  # not used


def test_after_a_refusal_windows_no_larger_are_skipped():
    refused = Refused("openai", 8192)
    skipped = fit(WINDOW_8K, refused=refused)
    assert skipped.reason == "context_window"
    assert skipped.figures == {
        "context_window": 8192,
        "refused_by": "openai",
        "refused_window": 8192,
    }
    assert fit(WINDOW_128K, refused=refused).reason is None
    assert fit({}, refused=refused).reason is None  # unknown window: may be larger


def test_request_needs_reads_tools_schemas_and_images():
    from pydantic import BaseModel

    class Answer(BaseModel):
        name: str

    text = [{"role": "user", "content": "hi"}]
    image = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
            ],
        }
    ]
    assert request_needs(text, {}) == Needs()
    assert request_needs(text, {"tools": [{"type": "function"}]}) == Needs(tools=True)
    assert request_needs(text, {"tools": []}) == Needs()
    schema = {"type": "json_schema", "json_schema": {"name": "a", "schema": {}}}
    assert request_needs(text, {"response_format": schema}) == Needs(json_schema=True)
    assert request_needs(text, {"response_format": Answer}) == Needs(json_schema=True)
    assert request_needs(text, {"response_format": {"type": "json_object"}}) == Needs()
    assert request_needs(image, {}) == Needs(vision=True)


# -- the flow ------------------------------------------------------------------------------

BIG_PROMPT = 10_000


def facts_on(svc, **facts: dict[str, Any]) -> None:
    for name, values in facts.items():
        p = svc.config.providers[name]
        p.model_facts = {p.default_model: ModelFacts(**values)}


def big_request(**changes: Any):
    return make_request(prompt_tokens=BIG_PROMPT, max_tokens=1000, **changes)


def test_a_provider_too_small_is_skipped_without_permit_row_or_call():
    script = Script({"openai": [], "anthropic": [answer()]})
    limiter = RateLimiter(clock=script.clock)
    limiter.configure("openai", rpm=1, tpm=None)
    svc = services(script, ("openai", "anthropic"), limiter=limiter)
    facts_on(svc, openai=WINDOW_8K, anthropic=WINDOW_128K)
    response = script.run(svc, big_request())
    assert script.calls == ["anthropic"]
    skipped, won = response["attempts"]
    assert skipped["outcome"] == "skipped" and skipped["reason"] == "context_window"
    assert skipped["error"] == "LLMContextWindowError"
    assert (skipped["needed_tokens"], skipped["context_window"]) == (12_000, 8192)
    assert won["provider"] == "anthropic" and won["outcome"] == "success"
    assert [r["provider"] for r in script.ledger.reserved] == ["anthropic"]
    assert not isinstance(limiter.acquire("openai", 1), Denied)  # its one permit is unused


def test_skips_do_not_count_towards_max_fallback_attempts():
    script = Script({"ollama": [], "openai": [], "anthropic": [answer()]})
    svc = services(script, ("ollama", "openai", "anthropic"), max_fallback_attempts=1)
    facts_on(svc, ollama={"supports_tools": False}, openai={"supports_tools": False})
    request = make_request(params={"max_tokens": 20, "tools": [{"type": "function"}]})
    response = script.run(svc, request)
    assert script.calls == ["anthropic"]
    assert [a["reason"] for a in response["attempts"][:2]] == ["no_tools", "no_tools"]
    assert response["attempts"][0]["missing_feature"] == "tools"


def test_no_provider_holds_the_prompt_is_one_context_window_error():
    script = Script({"openai": [], "anthropic": []})
    svc = services(script, ("openai", "anthropic"))
    facts_on(svc, openai=WINDOW_8K, anthropic={"max_input_tokens": 4096})
    with pytest.raises(LLMContextWindowError) as caught:
        script.run(svc, big_request())
    assert script.calls == [] and script.ledger.reserved == []
    error = caught.value
    assert error.metadata["reasons"] == {"openai": "context_window", "anthropic": "context_window"}
    assert "openai" in str(error) and "anthropic" in str(error) and "4,096" in str(error)
    assert len(error.metadata["attempts"]) == 2


def test_no_provider_fits_for_mixed_reasons_names_each():
    script = Script({"openai": [], "anthropic": []})
    svc = services(script, ("openai", "anthropic"))
    facts_on(svc, openai={"supports_tools": False}, anthropic={"max_input_tokens": 20})
    request = make_request(params={"max_tokens": 20, "tools": [{"type": "function"}]})
    with pytest.raises(LLMValidationError) as caught:
        script.run(svc, request)
    assert type(caught.value) is LLMValidationError
    assert caught.value.metadata["reasons"] == {"openai": "no_tools", "anthropic": "context_window"}
    assert "tool calling" in str(caught.value) and script.calls == []


def test_a_pinned_provider_that_cannot_fit_raises_without_a_call():
    script = Script({"openai": []})
    svc = services(script, ("openai", "anthropic"))
    facts_on(svc, openai=WINDOW_8K)
    with pytest.raises(LLMContextWindowError):
        script.run(svc, big_request(pinned_provider="openai"))
    assert script.calls == []


def test_a_context_refusal_is_not_retried_and_skips_windows_no_larger():
    refusal = http_error(400, "context_length_exceeded")
    script = Script({"ollama": [refusal], "openai": [], "anthropic": [answer()]})
    svc = services(script, ("ollama", "openai", "anthropic"), retries=3)
    facts_on(svc, ollama=WINDOW_8K, openai={"max_input_tokens": 8000}, anthropic=WINDOW_128K)
    response = script.run(svc, make_request())  # a small prompt: the estimate said it fits
    assert script.calls == ["ollama", "anthropic"]
    refused, skipped, won = response["attempts"]
    assert (refused["outcome"], refused["error"]) == ("error", "LLMContextWindowError")
    assert skipped["reason"] == "context_window" and skipped["refused_by"] == "ollama"
    assert won["provider"] == "anthropic"
    [row] = [r for r in script.ledger.settled if r["provider"] == "ollama"]
    assert row["error_class"] == "LLMContextWindowError" and row["cost_usd"] == 0


def test_content_policy_refusal_falls_back_once():
    script = Script(
        {"openai": [http_error(400, "content_policy_violation")], "anthropic": [answer()]}
    )
    svc = services(script, ("openai", "anthropic"), retries=3)
    response = script.run(svc, make_request())
    assert script.calls == ["openai", "anthropic"]
    assert response["attempts"][0]["error"] == "LLMContentPolicyError"


def test_every_provider_refusing_is_all_providers_failed():
    refusal = http_error(400, "context_length_exceeded")
    script = Script({"openai": [refusal], "anthropic": [refusal]})
    svc = services(script, ("openai", "anthropic"))
    with pytest.raises(AllProvidersFailedError) as caught:
        script.run(svc, make_request())
    assert {type(e).__name__ for e in caught.value.provider_errors.values()} == {
        "LLMContextWindowError"
    }


def test_lowered_max_tokens_is_sent_reserved_and_noted():
    sent: list[Any] = []

    def arguments_for(provider, messages, **kw):
        sent.append(kw["params"])
        return {"model": provider.default_model}

    script = Script({"openai": [answer()]})
    svc = services(script, ("openai",))
    svc.arguments_for = arguments_for
    facts_on(svc, openai=WINDOW_8K)
    response = script.run(svc, make_request(max_tokens=6000, params={"max_tokens": 6000}))
    assert sent == [{"max_tokens": 4096}]
    [entry] = response["attempts"]
    assert (entry["max_tokens_requested"], entry["max_tokens_sent"]) == (6000, 4096)


def test_an_answer_stopped_by_the_content_filter_is_a_policy_refusal_charged():
    stopped = answer(text="")
    stopped["choices"][0].update(message={"role": "assistant", "content": None})
    stopped["choices"][0]["finish_reason"] = "content_filter"
    script = Script({"openai": [stopped], "anthropic": [answer()]})
    svc = services(script, ("openai", "anthropic"), retries=3)
    response = script.run(svc, make_request())
    assert script.calls == ["openai", "anthropic"]
    assert response["attempts"][0]["error"] == "LLMContentPolicyError"
    [row] = [r for r in script.ledger.settled if r["provider"] == "openai"]
    assert row["error_class"] == "LLMContentPolicyError" and row["cost_usd"] > 0
