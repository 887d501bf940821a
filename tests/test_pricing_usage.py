"""The cost of real usage payloads, checked against hand calculations, and of impossible ones.

Each provider's payload (OpenAI, Anthropic as LiteLLM maps it, Ollama, a custom endpoint)
priced to the hand calculation written beside it; counts that cannot be (more cached than
prompt tokens, negative or malformed counts, reasoning beyond the completion) clamped and
reported; the worst case a reservation holds. The map's numbers are LiteLLM 1.110.2's
bundled ones, written out beside each case.
"""

from __future__ import annotations

import math

import pytest

from leadfactory.llm.pricing import (
    PriceSource,
    charge,
    price_for,
    token_usage,
    worst_case_cost,
)
from leadfactory.llm.provider_config import ModelPrice, ProviderConfig

from .pricing_cases import OPENAI_CACHED_REASONING

# fixtures, imported so that pytest finds them in this module
from .pricing_cases import fresh_decisions as fresh_decisions

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
