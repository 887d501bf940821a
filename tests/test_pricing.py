"""Prices per model and the cost of real usage payloads, checked against hand calculations.

The map's numbers are LiteLLM 1.110.2's bundled ones, written out beside each case.
"""

from __future__ import annotations

import math

import pytest

from leadfactory.llm import model_map, pricing
from leadfactory.llm.config import LLMConfig
from leadfactory.llm.exceptions import LLMConfigurationError
from leadfactory.llm.pricing import (
    PriceSource,
    charge,
    price_for,
    price_setting,
    token_usage,
    unpriced_refusal,
    worst_case_cost,
)
from leadfactory.llm.provider_config import ModelPrice, ProviderConfig


@pytest.fixture(autouse=True)
def fresh_decisions():
    """Each test decides its prices anew (some replace the map)."""
    pricing._resolve.cache_clear()
    yield
    pricing._resolve.cache_clear()


# OpenAI's reasoning model o3-mini, as OpenAI reports it (LiteLLM passes it through).
OPENAI_CACHED_REASONING = {
    "prompt_tokens": 2000,
    "completion_tokens": 500,
    "total_tokens": 2500,
    "prompt_tokens_details": {"cached_tokens": 1200, "audio_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 300, "audio_tokens": 0},
}

# Anthropic's usage as the API sends it: cache reads and writes are NOT in input_tokens.
ANTHROPIC_NATIVE = {
    "input_tokens": 100,
    "cache_creation_input_tokens": 1000,
    "cache_read_input_tokens": 2000,
    "output_tokens": 400,
}
# ... and as LiteLLM 1.110.2 hands it to the client (AnthropicConfig.calculate_usage adds
# both cache counts to prompt_tokens; test_litellm_maps_usage_as_the_table_assumes checks).
ANTHROPIC_AS_LITELLM_MAPS_IT = {
    "prompt_tokens": 3100,
    "completion_tokens": 400,
    "total_tokens": 3500,
    "prompt_tokens_details": {"cached_tokens": 2000, "cache_creation_tokens": 1000},
    "cache_creation_input_tokens": 1000,
    "cache_read_input_tokens": 2000,
}

OLLAMA = {"prompt_tokens": 500, "completion_tokens": 100, "total_tokens": 600}

CUSTOM = {
    "prompt_tokens": 1000,
    "completion_tokens": 250,
    "total_tokens": 1250,
    "prompt_tokens_details": {"cached_tokens": 400},
}


def custom_provider() -> ProviderConfig:
    return ProviderConfig(
        name="vllm",
        base_url="http://127.0.0.1:8000/v1",
        api_key="k",
        default_model="openai/my-model",
        model_prices={
            "openai/my-model": ModelPrice(input_cost_per_token=2e-7, output_cost_per_token=6e-7)
        },
    )


CASES = [
    pytest.param(
        ProviderConfig(name="openai", api_key="k", default_model="o3-mini"),
        OPENAI_CACHED_REASONING,
        # o3-mini: input 1.1e-6, cache read 5.5e-7, output 4.4e-6 per token
        # 800 uncached x 1.1e-6 + 1200 cached x 5.5e-7 + 500 output (300 reasoning) x 4.4e-6
        800 * 1.1e-6 + 1200 * 5.5e-7 + 500 * 4.4e-6,  # = 0.00374
        (800, 1200, 0, 500, 300),
        PriceSource.LITELLM_MAP,
        id="openai-cached-and-reasoning",
    ),
    pytest.param(
        ProviderConfig(name="anthropic", api_key="k", default_model="claude-sonnet-4-5"),
        ANTHROPIC_AS_LITELLM_MAPS_IT,
        # claude-sonnet-4-5: input 3e-6, cache read 3e-7, cache write 3.75e-6, output 1.5e-5
        # 100 x 3e-6 + 2000 x 3e-7 + 1000 x 3.75e-6 + 400 x 1.5e-5
        100 * 3e-6 + 2000 * 3e-7 + 1000 * 3.75e-6 + 400 * 1.5e-5,  # = 0.01065
        (100, 2000, 1000, 400, 0),
        PriceSource.LITELLM_MAP,
        id="anthropic-cache-read-and-creation",
    ),
    pytest.param(
        ProviderConfig(name="ollama", base_url="http://127.0.0.1:11434", default_model="llama3"),
        OLLAMA,
        0.0,  # local: free, whatever the map says
        (500, 0, 0, 100, 0),
        PriceSource.DEFAULT,
        id="ollama",
    ),
    pytest.param(
        custom_provider(),
        CUSTOM,
        # the user's price has no cache part: cached tokens are priced as input
        # 1000 x 2e-7 + 250 x 6e-7
        1000 * 2e-7 + 250 * 6e-7,  # = 0.00035
        (600, 400, 0, 250, 0),
        PriceSource.USER_MODEL,
        id="custom-endpoint-user-price",
    ),
]


@pytest.mark.parametrize(("provider", "usage", "expected", "tokens", "source"), CASES)
def test_real_usage_is_priced_to_the_hand_calculation(provider, usage, expected, tokens, source):
    price = price_for(provider)
    result = charge(usage, price)
    assert abs(result.cost_usd - expected) <= 1e-9
    billed = result.usage
    assert (
        billed.input_tokens,
        billed.cache_read_tokens,
        billed.cache_write_tokens,
        billed.output_tokens,
        billed.reasoning_tokens,
    ) == tokens
    assert billed.clamped == ()
    assert price.source is source


def test_the_hand_calculations_above_are_right():
    """The products written out, as plain decimals."""
    assert math.isclose(800 * 1.1e-6 + 1200 * 5.5e-7 + 500 * 4.4e-6, 0.00374)
    assert math.isclose(100 * 3e-6 + 2000 * 3e-7 + 1000 * 3.75e-6 + 400 * 1.5e-5, 0.01065)
    assert math.isclose(1000 * 2e-7 + 250 * 6e-7, 0.00035)


def test_litellm_maps_usage_as_the_table_assumes():
    """The table's payloads are what the client sees: LiteLLM's own mapping of the wire."""
    from leadfactory.llm.providers import load_litellm, usage_dict

    litellm = load_litellm()
    from litellm.llms.anthropic.chat.transformation import AnthropicConfig

    mapped = AnthropicConfig().calculate_usage(ANTHROPIC_NATIVE, reasoning_content=None)
    expected = token_usage(ANTHROPIC_AS_LITELLM_MAPS_IT)
    assert token_usage(mapped) == expected
    assert token_usage(mapped.model_dump()) == expected
    assert token_usage(usage_dict(mapped)) == expected  # the usage a response dict carries
    assert usage_dict(mapped)["prompt_tokens_details"] == {
        "cached_tokens": 2000,
        "cache_write_tokens": 1000,
        "text_tokens": 100,
    }
    openai = litellm.Usage(**OPENAI_CACHED_REASONING)
    assert token_usage(openai) == token_usage(OPENAI_CACHED_REASONING)
    assert token_usage(usage_dict(openai)) == token_usage(OPENAI_CACHED_REASONING)
    assert usage_dict(openai) == OPENAI_CACHED_REASONING  # OpenAI's own shape, kept


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


# -- impossible usage -------------------------------------------------------------------


SPLIT_PRICE = ModelPrice(
    input_cost_per_token=1e-6,
    output_cost_per_token=2e-6,
    cache_read_cost_per_token=1e-7,
    cache_write_cost_per_token=3e-6,
)


def priced(usage):
    provider = ProviderConfig(
        name="x", api_key="k", default_model="m", model_prices={"m": SPLIT_PRICE}
    )
    return charge(usage, price_for(provider))


def test_more_cached_tokens_than_prompt_tokens_are_clamped_and_reported():
    result = priced({"prompt_tokens": 100, "prompt_tokens_details": {"cached_tokens": 150}})
    assert (result.usage.input_tokens, result.usage.cache_read_tokens) == (0, 100)
    assert result.usage.clamped == ("cached_tokens=150 > prompt_tokens=100: clamped to 100",)
    assert abs(result.cost_usd - 100 * 1e-7) <= 1e-15


def test_cache_reads_and_writes_beyond_the_prompt_are_clamped():
    usage = {
        "prompt_tokens": 100,
        "prompt_tokens_details": {"cached_tokens": 60, "cache_write_tokens": 70},
    }
    result = priced(usage)
    assert (result.usage.cache_read_tokens, result.usage.cache_write_tokens) == (60, 40)
    assert result.usage.input_tokens == 0
    assert "clamped to 40" in result.usage.clamped[0]


def test_negative_and_malformed_counts_count_as_zero_and_are_reported():
    usage = {
        "prompt_tokens": -5,
        "completion_tokens": "12",
        "completion_tokens_details": {"reasoning_tokens": -1},
    }
    result = priced(usage)
    assert result.cost_usd == 0.0
    assert len(result.usage.clamped) == 3
    assert "prompt_tokens=-5 is negative" in result.usage.clamped[0]
    assert "completion_tokens is not a count (a str)" in result.usage.clamped[1]
    assert "12" not in result.usage.clamped[1]  # the provider's text is not repeated


def test_reasoning_beyond_the_completion_is_clamped_and_never_added_twice():
    usage = {
        "prompt_tokens": 0,
        "completion_tokens": 10,
        "completion_tokens_details": {"reasoning_tokens": 25},
    }
    result = priced(usage)
    assert (result.usage.output_tokens, result.usage.reasoning_tokens) == (10, 10)
    assert abs(result.cost_usd - 10 * 2e-6) <= 1e-15
    assert result.usage.clamped


def test_missing_usage_costs_nothing():
    result = priced(None)
    assert result.cost_usd == 0.0 and result.usage.clamped == ()


def test_worst_case_is_every_prompt_token_uncached_and_max_tokens_of_output():
    price = price_for(ProviderConfig(name="openai", api_key="k", default_model="gpt-4o"))
    assert abs(worst_case_cost(price, 1000, 500) - (1000 * 2.5e-6 + 500 * 1e-5)) <= 1e-12


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
