"""A paid model with no price from any source: refused while a budget is on (never
sent, never charged), called and marked when no budget can count it."""

from __future__ import annotations

import pytest

from leadfactory.llm import LLMClient, LLMConfig, LLMConfigurationError

USER = [{"role": "user", "content": "Write a tagline for a bakery."}]
UNKNOWN = "gpt-99-preview"  # a model LiteLLM's price map does not know


@pytest.fixture
def unpriced_openai(sim_env, monkeypatch, tmp_path):
    monkeypatch.setenv("OPENAI_MODEL", UNKNOWN)
    monkeypatch.setenv("LLM_LEDGER_PATH", str(tmp_path / "ledger.db"))
    monkeypatch.setenv("LLM_MAX_COST_PER_REQUEST", "none")
    monkeypatch.setenv("LLM_MONTHLY_COST_LIMIT", "none")
    return sim_env


def openai_only() -> LLMConfig:
    config = LLMConfig(enable_caching=False)
    for name in ("ollama", "anthropic"):
        config.providers[name].enabled = False
    return config


def test_an_unpriced_paid_model_under_a_daily_budget_is_refused(unpriced_openai, monkeypatch):
    monkeypatch.setenv("LLM_DAILY_COST_LIMIT", "5")
    with LLMClient(openai_only()) as client:
        with pytest.raises(LLMConfigurationError) as refused:
            client.chat_completion(USER, max_tokens=20)
        rows = client.ledger.rows()
    message = str(refused.value)
    assert UNKNOWN in message and "OPENAI_INPUT_COST_PER_1K_TOKENS" in message
    assert "OPENAI_COST_PER_1K_TOKENS" in message
    assert unpriced_openai.request_count("openai") == 0 and rows == []


def test_the_next_provider_answers_when_one_is_unpriced(unpriced_openai, monkeypatch):
    monkeypatch.setenv("LLM_DAILY_COST_LIMIT", "5")
    config = LLMConfig(enable_caching=False, fallback_strategy="round_robin")
    config.providers["ollama"].enabled = False
    with LLMClient(config) as client:
        response = client.chat_completion(USER, max_tokens=20)
    assert response["provider"] == "anthropic"
    skipped = response["attempts"][0]
    assert (skipped["provider"], skipped["outcome"], skipped["reason"]) == (
        "openai",
        "skipped",
        "unpriced",
    )
    assert unpriced_openai.request_count("openai") == 0


def test_a_user_price_makes_it_callable_under_the_budget(unpriced_openai, monkeypatch):
    monkeypatch.setenv("LLM_DAILY_COST_LIMIT", "5")
    monkeypatch.setenv("OPENAI_INPUT_COST_PER_1K_TOKENS", "0.001")
    monkeypatch.setenv("OPENAI_OUTPUT_COST_PER_1K_TOKENS", "0.002")
    with LLMClient(openai_only()) as client:
        response = client.chat_completion(USER, max_tokens=20)
    assert response["provider"] == "openai" and response["cost"] > 0


@pytest.mark.parametrize(
    "setting", [{"LLM_DAILY_COST_LIMIT": "none"}, {"LLM_COST_TRACKING": "false"}]
)
def test_without_a_budget_that_counts_it_the_call_is_made(unpriced_openai, monkeypatch, setting):
    monkeypatch.setenv("LLM_DAILY_COST_LIMIT", "5")
    for name, value in setting.items():
        monkeypatch.setenv(name, value)
    with LLMClient(openai_only()) as client:
        response = client.chat_completion(USER, max_tokens=20)
        rows = client.ledger.rows()
    assert response["provider"] == "openai" and response["cost"] == 0.0
    assert unpriced_openai.request_count("openai") == 1
    tracked = setting.get("LLM_COST_TRACKING") != "false"
    assert len(rows) == (1 if tracked else 0)
    if tracked:
        assert rows[0]["price_source"] == "unpriced"


def test_the_status_says_why_an_unpriced_provider_is_unavailable(unpriced_openai, monkeypatch):
    monkeypatch.setenv("LLM_DAILY_COST_LIMIT", "5")
    with LLMClient(openai_only()) as client:
        status = client.get_provider_status()["openai"]
    assert not status["available"] and "has no price" in status["unavailable_reason"]
    assert status["price_source"] == "unpriced" and status["input_cost_per_1k_tokens"] is None


def test_the_status_gives_each_models_price_and_its_source(sim_env):
    with LLMClient(LLMConfig(enable_caching=False)) as client:
        status = client.get_provider_status()
    # gpt-5.4-mini in LiteLLM's map: $0.75 and $4.50 per 1M tokens
    openai = status["openai"]
    assert openai["price_source"] == "litellm_map"
    assert openai["input_cost_per_1k_tokens"] == pytest.approx(0.00075, abs=1e-12)
    assert openai["output_cost_per_1k_tokens"] == pytest.approx(0.0045, abs=1e-12)
    assert status["ollama"]["price_source"] == "default"
