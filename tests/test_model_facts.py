"""Model limits and features from LiteLLM's bundled map, overridable per model."""

from __future__ import annotations

import pytest

from leadfactory.llm.model_facts import facts_for, map_facts
from leadfactory.llm.provider_config import ModelFacts, ProviderConfig


def openai(model: str, **changes) -> ProviderConfig:
    return ProviderConfig(name="openai", api_key="k", default_model=model, **changes)


def test_the_map_gives_limits_and_features():
    # LiteLLM 1.110.2's map: gpt-4o takes 128,000 tokens in, 16,384 out, tools, schema, images
    assert facts_for(openai("gpt-4o")) == ModelFacts(
        max_input_tokens=128000,
        max_output_tokens=16384,
        supports_tools=True,
        supports_json_schema=True,
        supports_vision=True,
    )
    assert facts_for(openai("o3-mini")).supports_vision is False


def test_a_feature_the_map_does_not_state_is_unknown():
    facts = facts_for(openai("gpt-4"))  # no supports_response_schema key in the map
    assert facts.max_input_tokens == 8192
    assert facts.supports_json_schema is None


def test_ollama_models_are_found_under_the_maps_prefix():
    ollama = ProviderConfig(
        name="ollama", base_url="http://127.0.0.1:11434", default_model="llama3"
    )
    assert facts_for(ollama).max_input_tokens == 8192


def test_an_unknown_model_has_no_facts():
    assert facts_for(openai("openai/my-own-model")) == ModelFacts()


def test_configured_facts_replace_the_maps_one_by_one():
    provider = openai(
        "gpt-4o",
        model_facts={"gpt-4o": ModelFacts(max_input_tokens=32000, supports_vision=False)},
    )
    facts = facts_for(provider)
    assert facts.max_input_tokens == 32000
    assert facts.supports_vision is False
    assert facts.max_output_tokens == 16384  # not overridden: the map's
    assert facts_for(provider, "gpt-4o-mini").max_input_tokens == 128000  # another model


def test_a_local_model_the_map_does_not_know_takes_its_configured_window():
    ollama = ProviderConfig(
        name="ollama",
        base_url="http://127.0.0.1:11434",
        default_model="qwen-local:7b",
        model_facts={"qwen-local:7b": {"max_input_tokens": 32768, "supports_tools": True}},
    )
    assert facts_for(ollama) == ModelFacts(max_input_tokens=32768, supports_tools=True)


@pytest.mark.parametrize(
    "entry",
    [
        {"max_input_tokens": "lots", "supports_vision": "yes"},
        {"max_input_tokens": -1, "max_output_tokens": True},
        {"max_input_tokens": None},
    ],
)
def test_malformed_map_values_are_unknown(entry):
    assert map_facts(entry) == ModelFacts()


def test_a_malformed_configured_fact_is_a_configuration_error():
    from leadfactory.llm.exceptions import LLMConfigurationError

    with pytest.raises(LLMConfigurationError, match="model_facts"):
        openai("gpt-4o", model_facts={"gpt-4o": {"max_input_tokens": 0}})
