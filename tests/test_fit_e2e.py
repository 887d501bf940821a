"""Fit-aware fallback end to end: LiteLLM's real code against the simulator.

A provider whose model cannot hold the prompt, or lacks a feature the request uses, gets
no request at all (the simulator counts) and no ledger row; tools and JSON schemas come
back in OpenAI's shape whichever wire protocol answered.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from leadfactory.llm import (
    LLMClient,
    LLMConfig,
    LLMConfigurationError,
    LLMContextWindowError,
    LLMValidationError,
)
from leadfactory.llm.provider_config import ModelFacts

BIG = [{"role": "user", "content": "Analyse this business. " + "lorem ipsum dolor " * 2200}]
USER = [{"role": "user", "content": "What is the weather in Paris?"}]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather forecast for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city", "days"],
        },
    },
}
COMPANY = {
    "type": "json_schema",
    "json_schema": {
        "name": "company",
        "strict": True,
        "schema": {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "employees": {"type": "integer"},
                "sectors": {"type": "array", "items": {"type": "string"}},
            },
            "required": ["name", "employees", "sectors"],
            "additionalProperties": False,
        },
    },
}


@pytest.fixture(autouse=True)
def guide_models(monkeypatch):
    """The models these tests were written for: the guide's gpt-4 (8,192 tokens in
    LiteLLM's map) and an Anthropic model the map does not know, at the guide's price
    (the library's defaults are other models since issue 14)."""
    monkeypatch.setenv("OPENAI_MODEL", "gpt-4")
    monkeypatch.setenv("ANTHROPIC_MODEL", "claude-3-sonnet-20240229")
    monkeypatch.setenv("ANTHROPIC_COST_PER_1K_TOKENS", "0.015")


def client_for(order: list[str], facts: dict[str, dict[str, Any]] | None = None) -> LLMClient:
    """The providers of ``order``, tried in that order, with ``facts`` for their models."""
    config = LLMConfig(fallback_strategy="quality_optimized", enable_caching=False)
    for name in list(config.providers):
        if name not in order:
            del config.providers[name]
    for rank, name in enumerate(order):
        provider = config.providers[name]
        provider.priority = 10 - rank
        if name in (facts or {}):
            provider.model_facts = {provider.default_model: ModelFacts(**facts[name])}
    return LLMClient(config)


def rows_of(client: LLMClient, provider: str) -> list[dict[str, Any]]:
    return [row for row in client.ledger.rows() if row["provider"] == provider]


def test_a_prompt_too_long_for_the_first_model_never_reaches_it(sim_env):
    # openai's gpt-4 holds 8,192 tokens (LiteLLM's map); this Ollama deployment 128k.
    facts = {"ollama": {"max_input_tokens": 128_000}}
    with client_for(["openai", "ollama"], facts) as client:
        response = client.chat_completion(BIG, max_tokens=100)
        assert rows_of(client, "openai") == []
        assert len(rows_of(client, "ollama")) == 1
    assert sim_env.request_count("openai") == 0
    assert sim_env.request_count("ollama") == 1
    assert response["provider"] == "ollama"
    skipped = response["attempts"][0]
    assert (skipped["provider"], skipped["outcome"], skipped["reason"]) == (
        "openai",
        "skipped",
        "context_window",
    )
    assert skipped["context_window"] == 8192
    assert 9_500 < skipped["estimated_prompt_tokens"] < 10_500
    assert skipped["needed_tokens"] > skipped["context_window"]
    assert response["attempts"][1]["outcome"] == "success"


def test_the_environment_states_a_built_in_providers_window(sim_env, monkeypatch):
    """OLLAMA_CONTEXT_WINDOW (the server's num_ctx) and OPENAI_CONTEXT_WINDOW replace
    LiteLLM's figures: here gpt-4's 8,192 is raised, and Ollama's lowered below the
    prompt, so the order's second provider answers and the first gets no request."""
    monkeypatch.setenv("OLLAMA_CONTEXT_WINDOW", "4096")
    monkeypatch.setenv("OPENAI_CONTEXT_WINDOW", "32000")
    monkeypatch.setenv("OPENAI_MAX_OUTPUT_TOKENS", "50")
    with client_for(["ollama", "openai"]) as client:
        response = client.chat_completion(BIG, max_tokens=100)
    assert sim_env.request_count("ollama") == 0
    assert response["provider"] == "openai"
    skipped, answered = response["attempts"]
    assert (skipped["reason"], skipped["context_window"]) == ("context_window", 4096)
    assert (answered["max_tokens_requested"], answered["max_tokens_sent"]) == (100, 50)
    monkeypatch.setenv("OPENAI_CONTEXT_WINDOW", "0")
    with pytest.raises(LLMConfigurationError, match="OPENAI_CONTEXT_WINDOW"):
        LLMConfig()


def test_tools_skip_a_model_configured_without_them(sim_env):
    facts = {"openai": {"supports_tools": False}}
    with client_for(["openai", "anthropic"], facts) as client:
        response = client.chat_completion(USER, max_tokens=100, tools=[WEATHER])
        assert rows_of(client, "openai") == []
    assert sim_env.request_count("openai") == 0
    assert response["provider"] == "anthropic"
    assert response["attempts"][0]["reason"] == "no_tools"
    [call] = response["choices"][0]["message"]["tool_calls"]
    assert call["function"]["name"] == "get_weather"


def test_a_json_schema_skips_a_model_configured_without_it(sim_env, monkeypatch):
    monkeypatch.setenv("OPENAI_MODEL", "gpt-4o")  # LiteLLM itself refuses gpt-4 a schema
    facts = {"anthropic": {"supports_json_schema": False}}
    with client_for(["anthropic", "openai"], facts) as client:
        response = client.chat_completion(USER, max_tokens=100, response_format=COMPANY)
        assert rows_of(client, "anthropic") == []
    assert sim_env.request_count("anthropic") == 0
    assert response["provider"] == "openai"
    assert response["attempts"][0]["reason"] == "no_json_schema"
    assert set(json.loads(response["choices"][0]["message"]["content"])) == {
        "name",
        "employees",
        "sectors",
    }


def test_no_provider_fits_is_one_error_and_no_request(sim_env):
    facts = {"openai": {"supports_tools": False}, "anthropic": {"max_input_tokens": 4096}}
    with client_for(["openai", "anthropic"], facts) as client:
        with pytest.raises(LLMValidationError) as caught:
            client.chat_completion(USER, max_tokens=5000, tools=[WEATHER])
        assert client.ledger.rows() == []
    assert caught.value.metadata["reasons"] == {"openai": "no_tools", "anthropic": "context_window"}
    assert "openai" in str(caught.value) and "anthropic" in str(caught.value)
    with client_for(["openai", "ollama"]) as client, pytest.raises(LLMContextWindowError) as caught:
        client.chat_completion(BIG, max_tokens=100)  # gpt-4 and llama3:8b: 8k each
    assert set(caught.value.metadata["reasons"].values()) == {"context_window"}
    assert sim_env.request_count("openai") == sim_env.request_count("ollama") == 0
    assert sim_env.request_count("anthropic") == 0


# Each wire protocol: OpenAI, Anthropic, Ollama's /v1 (the default route) and its own /api/chat.
ROUTES = {
    "openai": {"OPENAI_MODEL": "gpt-4o"},  # LiteLLM refuses gpt-4 a response_format
    "anthropic": {},
    "ollama": {},
    "ollama_native": {"OLLAMA_MODEL": "ollama_chat/llama3:8b"},
}


def pinned(route: str, monkeypatch) -> tuple[LLMClient, str]:
    for name, value in ROUTES[route].items():
        monkeypatch.setenv(name, value)
    return LLMClient(LLMConfig(enable_caching=False)), route.partition("_")[0]


@pytest.mark.parametrize("route", list(ROUTES))
def test_tool_calls_come_back_in_openai_shape_from_every_protocol(sim_env, monkeypatch, route):
    client, provider = pinned(route, monkeypatch)
    with client:
        response = client.chat_completion(USER, model=provider, max_tokens=100, tools=[WEATHER])
    choice = response["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    [call] = choice["message"]["tool_calls"]
    assert set(call) == {"id", "type", "function"} and call["id"]
    assert call["type"] == "function" and set(call["function"]) == {"name", "arguments"}
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"city": "sample", "days": 1}
    sent = sim_env.requests(provider)[-1]["json"]
    assert sent["tools"]  # passed through, in the vendor's own shape


@pytest.mark.parametrize("route", list(ROUTES))
def test_a_json_schema_comes_back_as_parseable_content_from_every_protocol(
    sim_env, monkeypatch, route
):
    client, provider = pinned(route, monkeypatch)
    with client:
        response = client.chat_completion(
            USER, model=provider, max_tokens=100, response_format=COMPANY
        )
    content = json.loads(response["choices"][0]["message"]["content"])
    assert content == {"name": "sample", "employees": 1, "sectors": ["sample"]}


def test_the_async_client_skips_the_same_way(sim_env):
    import asyncio

    facts = {"ollama": {"max_input_tokens": 128_000}}

    async def ask() -> dict[str, Any]:
        with client_for(["openai", "ollama"], facts) as client:
            return await client.achat_completion(BIG, max_tokens=100)

    response = asyncio.run(ask())
    assert sim_env.request_count("openai") == 0
    assert [a["outcome"] for a in response["attempts"]] == ["skipped", "success"]
    assert response["attempts"][0]["reason"] == "context_window"
