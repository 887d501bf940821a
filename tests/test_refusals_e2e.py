"""Context-length and content-policy refusals, end to end: each vendor's real error body
through LiteLLM's real code, classified, not retried, charged nothing, and fallen back from."""

from __future__ import annotations

import pytest

from leadfactory.llm import (
    LLMClient,
    LLMConfig,
    LLMContentPolicyError,
    LLMContextWindowError,
    LLMValidationError,
)
from leadfactory.llm.provider_config import ModelFacts
from leadfactory.llm.simulator import Fault

USER = [{"role": "user", "content": "Summarise this business."}]
BACKUP = {"openai": "ollama", "anthropic": "openai", "ollama": "openai"}

# (protocol, fault) -> the class the refusal is raised as. Ollama's context-length 400
# carries no code and LiteLLM does not recognise it; Ollama has no content policy.
EXPECTED = {
    ("openai", Fault.CONTEXT_LENGTH): LLMContextWindowError,
    ("anthropic", Fault.CONTEXT_LENGTH): LLMContextWindowError,
    ("ollama", Fault.CONTEXT_LENGTH): LLMValidationError,
    ("openai", Fault.CONTENT_POLICY): LLMContentPolicyError,
    ("anthropic", Fault.CONTENT_POLICY): LLMContentPolicyError,
}


@pytest.fixture(autouse=True)
def guide_models(monkeypatch):
    """The models these tests were written for: the guide's gpt-4 (8,192 tokens in
    LiteLLM's map) and an Anthropic model the map does not know, at the guide's price
    (the library's defaults are other models since issue 14)."""
    monkeypatch.setenv("OPENAI_MODEL", "gpt-4")
    monkeypatch.setenv("ANTHROPIC_MODEL", "claude-3-sonnet-20240229")
    monkeypatch.setenv("ANTHROPIC_COST_PER_1K_TOKENS", "0.015")


def two_providers(first: str, second: str) -> LLMClient:
    """``first`` tried first (highest priority), then ``second``."""
    config = LLMConfig(fallback_strategy="quality_optimized", enable_caching=False)
    for name in list(config.providers):
        if name not in (first, second):
            del config.providers[name]
    config.providers[first].priority = 10
    config.providers[second].priority = 5
    config.providers[first].max_retries = 2  # a refusal must still not be retried
    backup = config.providers[second]  # larger than any first: not skipped after a refusal
    backup.model_facts = {backup.default_model: ModelFacts(max_input_tokens=1_000_000)}
    return LLMClient(config)


@pytest.mark.parametrize(("protocol", "fault"), list(EXPECTED), ids=lambda v: str(v))
def test_refusal_falls_back_unretried_and_uncharged(sim_env, protocol, fault):
    sim_env.set_fault(protocol, fault)
    backup = BACKUP[protocol]
    with two_providers(protocol, backup) as client:
        response = client.chat_completion(USER, max_tokens=20)
        rows = client.ledger.rows()
    error = EXPECTED[(protocol, fault)]
    assert response["provider"] == backup
    first, second = response["attempts"]
    assert (first["provider"], first["outcome"], first["error"]) == (
        protocol,
        "error",
        error.__name__,
    )
    assert second["outcome"] == "success"
    assert sim_env.request_count(protocol) == 1  # not asked again
    assert sim_env.request_count(backup) == 1
    [failed] = [r for r in rows if r["provider"] == protocol]
    assert failed["outcome"] == "error" and failed["error_class"] == error.__name__
    assert failed["cost_usd"] == 0 and failed["estimated"] == 0


@pytest.mark.parametrize("protocol", ["openai", "anthropic"])
def test_refusal_of_a_pinned_provider_is_raised_as_its_class(sim_env, protocol):
    sim_env.set_fault(protocol, Fault.CONTEXT_LENGTH)
    with (
        two_providers(protocol, BACKUP[protocol]) as client,
        pytest.raises(LLMContextWindowError) as caught,
    ):
        client.chat_completion(USER, model=protocol, max_tokens=20)
    assert caught.value.provider == protocol and caught.value.status_code == 400
    assert isinstance(caught.value, LLMValidationError)
    assert sim_env.request_count(protocol) == 1


def test_after_a_context_refusal_windows_no_larger_are_skipped(sim_env):
    # openai's gpt-4 and ollama's llama3:8b both hold 8,192 tokens (LiteLLM's map).
    sim_env.set_fault("openai", Fault.CONTEXT_LENGTH)
    config = LLMConfig(fallback_strategy="quality_optimized", enable_caching=False)
    for rank, name in enumerate(["openai", "ollama", "anthropic"]):
        config.providers[name].priority = 10 - rank
    with LLMClient(config) as client:
        response = client.chat_completion(USER, max_tokens=20)
        rows = client.ledger.rows()
    refused, skipped, won = response["attempts"]
    assert refused["error"] == "LLMContextWindowError"
    assert (skipped["provider"], skipped["outcome"], skipped["reason"]) == (
        "ollama",
        "skipped",
        "context_window",
    )
    assert (skipped["refused_by"], skipped["refused_window"], skipped["context_window"]) == (
        "openai",
        8192,
        8192,
    )
    assert won["provider"] == "anthropic" and response["provider"] == "anthropic"
    assert sim_env.request_count("ollama") == 0
    assert sorted(r["provider"] for r in rows) == ["anthropic", "openai"]


@pytest.mark.parametrize("protocol", ["openai", "anthropic"])
def test_an_answer_stopped_by_the_content_filter_is_a_charged_policy_refusal(
    sim_env, monkeypatch, protocol
):
    # A 200: OpenAI's finish_reason content_filter, Anthropic's stop_reason refusal.
    monkeypatch.setenv("LLM_COOLDOWN_FAILURES", "1")  # one outage would cool it down
    sim_env.set_fault(protocol, Fault.POLICY_STOP)
    backup = BACKUP[protocol]
    with two_providers(protocol, backup) as client:
        response = client.chat_completion(USER, max_tokens=20)
        rows = client.ledger.rows()
        status = client.get_provider_status()[protocol]
    assert response["provider"] == backup
    refused = response["attempts"][0]
    assert (refused["outcome"], refused["error"]) == ("error", "LLMContentPolicyError")
    assert sim_env.request_count(protocol) == 1
    [row] = [r for r in rows if r["provider"] == protocol]
    assert row["error_class"] == "LLMContentPolicyError"
    assert row["prompt_tokens"] > 0  # it answered, with usage: charged what it reported
    assert status["available"], status  # a refusal is not an outage: no cooldown
