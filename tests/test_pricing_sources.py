"""Where a model's price comes from, and what happens when a paid model has none.

The sources in turn (the user's split price, the user's blended price, LiteLLM's bundled
map, free for local providers, unpriced), decided once per provider and model, set from
code or the environment; an unpriced model refused only under a budget, with the setting
that would price it named; `estimate_request_cost` at the split prices. The map's numbers
are LiteLLM 1.110.2's bundled ones.
"""

from __future__ import annotations

import pytest

from leadfactory.llm import model_map, pricing
from leadfactory.llm.config import LLMConfig
from leadfactory.llm.exceptions import LLMConfigurationError
from leadfactory.llm.pricing import (
    PriceSource,
    charge,
    price_for,
    price_setting,
    unpriced_refusal,
)
from leadfactory.llm.provider_config import ModelPrice, ProviderConfig

from .pricing_cases import OPENAI_CACHED_REASONING

# fixtures, imported so that pytest finds them in this module
from .pricing_cases import fresh_decisions as fresh_decisions

# -- where the price comes from ---------------------------------------------------------


def test_each_source_wins_in_turn_for_one_model(monkeypatch):
    model = "gpt-4o"
    user_price = ModelPrice(input_cost_per_token=1e-6, output_cost_per_token=4e-6)
    provider = ProviderConfig(
        name="openai",
        api_key="k",
        default_model=model,
        cost_per_1k_tokens=0.02,
        model_prices={model: user_price},
    )
    assert price_for(provider).source is PriceSource.USER_MODEL
    assert (price_for(provider).input, price_for(provider).output) == (1e-6, 4e-6)

    provider.model_prices = {}
    blended = price_for(provider)
    assert blended.source is PriceSource.USER_BLENDED
    assert blended.input == blended.output == pytest.approx(0.02 / 1000, abs=1e-15)

    without_blended = ProviderConfig(name="openai", api_key="k", default_model=model)
    mapped = price_for(without_blended)
    assert mapped.source is PriceSource.LITELLM_MAP
    assert (mapped.input, mapped.output, mapped.cache_read) == (2.5e-6, 1e-5, 1.25e-6)

    monkeypatch.setattr(pricing, "map_entry", lambda *_: None)  # a map without the model
    pricing._resolve.cache_clear()  # decide again, with that map
    unpriced = price_for(without_blended)  # no guess: the guide's 0.03 was not set
    assert unpriced.source is PriceSource.UNPRICED and not unpriced.is_free


def test_a_local_provider_is_free_by_default_whatever_its_model():
    ollama = ProviderConfig(name="ollama", base_url="http://h:11434", default_model="mine:7b")
    lan = ProviderConfig(name="lan", base_url="http://h:11434", default_model="ollama/x")
    for provider in (ollama, lan):
        price = price_for(provider)
        assert price.source is PriceSource.DEFAULT and price.is_free


def test_the_price_is_decided_once_per_provider_and_model(monkeypatch):
    provider = ProviderConfig(name="openai", api_key="k", default_model="gpt-4o")
    first = price_for(provider)
    monkeypatch.setattr(pricing, "map_entry", lambda *_: None)  # no second lookup happens
    assert price_for(provider) is first
    assert price_for(provider.model_copy()) is first  # an equal configuration: same decision


def test_an_unknown_model_of_a_custom_provider_is_unpriced():
    provider = ProviderConfig(name="mine", api_key="k", default_model="openai/not-in-any-map")
    price = price_for(provider)
    assert price.source is PriceSource.UNPRICED
    assert not price.is_free


def test_a_user_price_of_zero_is_free():
    provider = ProviderConfig(
        name="openai", api_key="k", default_model="gpt-4o", cost_per_1k_tokens=0
    )
    price = price_for(provider)
    assert price.is_free and price.source is PriceSource.USER_BLENDED
    assert charge(OPENAI_CACHED_REASONING, price).cost_usd == 0.0


def test_a_model_override_is_priced_as_itself():
    provider = ProviderConfig(name="openai", api_key="k", default_model="gpt-4o")
    assert price_for(provider, "gpt-4o-mini").input == 1.5e-7
    assert price_for(provider, "openai/gpt-4o").input == 2.5e-6  # the route prefix is dropped


def test_the_environment_sets_each_kind_of_price(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("OPENAI_MODEL", "gpt-4o")
    assert price_for(LLMConfig().providers["openai"]).source is PriceSource.LITELLM_MAP

    monkeypatch.setenv("OPENAI_COST_PER_1K_TOKENS", "0.03")  # the default value, but set
    assert price_for(LLMConfig().providers["openai"]).source is PriceSource.USER_BLENDED

    monkeypatch.setenv("OPENAI_INPUT_COST_PER_1K_TOKENS", "0.0025")
    monkeypatch.setenv("OPENAI_OUTPUT_COST_PER_1K_TOKENS", "0.01")
    provider = LLMConfig().providers["openai"]
    price = price_for(provider)
    assert price.source is PriceSource.USER_MODEL
    assert price.input == pytest.approx(2.5e-6, abs=1e-18)
    assert price.output == pytest.approx(1e-5, abs=1e-18)
    assert price_for(provider, "gpt-4o-mini").source is PriceSource.USER_BLENDED  # another model


def test_half_a_split_price_is_a_configuration_error(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test")
    monkeypatch.setenv("ANTHROPIC_INPUT_COST_PER_1K_TOKENS", "0.003")
    with pytest.raises(LLMConfigurationError, match="ANTHROPIC_OUTPUT_COST_PER_1K_TOKENS"):
        LLMConfig()


def test_a_negative_model_price_is_refused():
    with pytest.raises(LLMConfigurationError, match="model_prices"):
        ProviderConfig(
            name="x",
            api_key="k",
            default_model="m",
            model_prices={"m": {"input_cost_per_token": -1, "output_cost_per_token": 0}},
        )


def test_the_map_is_found_without_importing_litellm():
    path = model_map.map_path()
    assert path is not None and path.name == "model_prices_and_context_window_backup.json"
    assert path.parent.name == "litellm"


# -- a paid model without a price ------------------------------------------------------


def test_an_unpriced_model_is_refused_only_under_a_budget():
    provider = ProviderConfig(name="openai", api_key="k", default_model="gpt-99-preview")
    price = price_for(provider)
    refusal = unpriced_refusal(provider, "gpt-99-preview", price, budgeted=True)
    assert isinstance(refusal, LLMConfigurationError) and refusal.provider == "openai"
    message = str(refusal)
    assert "'gpt-99-preview' has no price" in message
    assert "OPENAI_INPUT_COST_PER_1K_TOKENS and OPENAI_OUTPUT_COST_PER_1K_TOKENS" in message
    assert refusal.metadata["reason"] == "unpriced"
    assert unpriced_refusal(provider, "gpt-99-preview", price, budgeted=False) is None
    priced = price_for(provider, "gpt-4o")
    assert unpriced_refusal(provider, "gpt-4o", priced, budgeted=True) is None


def test_the_price_setting_names_what_this_provider_reads():
    openai = ProviderConfig(name="openai", api_key="k", default_model="gpt-99")
    assert price_setting(openai).startswith("OPENAI_INPUT_COST_PER_1K_TOKENS and OPENAI_OUTPUT")
    other_model = price_setting(openai, "gpt-98")  # the split variables price gpt-99 only
    assert other_model.startswith("OPENAI_COST_PER_1K_TOKENS")
    assert "INPUT" not in other_model and "model_prices['gpt-98']" in other_model
    custom = ProviderConfig(name="mine", api_key="k", default_model="openai/m")
    assert price_setting(custom) == (
        "ProviderConfig.model_prices['openai/m'] or ProviderConfig.cost_per_1k_tokens"
    )


def test_estimate_request_cost_is_the_worst_case_at_the_split_prices():
    config = LLMConfig(providers={})
    split = ModelPrice(input_cost_per_token=1e-6, output_cost_per_token=4e-6)
    config.providers["openai"] = ProviderConfig(
        name="openai", api_key="k", default_model="m", model_prices={"m": split}
    )
    config.providers["blended"] = ProviderConfig(
        name="blended", api_key="k", default_model="m", cost_per_1k_tokens=0.03
    )
    # 1,100 tokens of which 100 are the completion allowance: 1,000 x 1e-6 + 100 x 4e-6
    assert config.estimate_request_cost(1100, "openai", max_tokens=100) == pytest.approx(
        1000 * 1e-6 + 100 * 4e-6, abs=1e-15
    )
    # without the split, every token may be output: 1,100 x 4e-6
    assert config.estimate_request_cost(1100, "openai") == pytest.approx(1100 * 4e-6, abs=1e-15)
    # the guide's blended price: tokens / 1000 x price, whichever way
    for max_tokens in (None, 100):
        cost = config.estimate_request_cost(1100, "blended", max_tokens=max_tokens)
        assert cost == pytest.approx(1100 / 1000 * 0.03, abs=1e-15)
    with pytest.raises(LLMConfigurationError, match="max_tokens must be between 0 and tokens"):
        config.estimate_request_cost(100, "openai", max_tokens=101)
