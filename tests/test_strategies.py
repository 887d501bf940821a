"""Each strategy's order for the built-in providers plus one custom provider."""

from __future__ import annotations

import pytest

from leadfactory.llm.config import FallbackStrategy, LLMConfig, ProviderConfig
from leadfactory.llm.provider_config import ModelPrice
from leadfactory.llm.strategies import RequestSize, order_providers, plan_fallback

DECLARED = ["ollama", "openai", "anthropic", "custom"]


def providers(**overrides) -> dict[str, ProviderConfig]:
    base = {
        "ollama": dict(
            default_model="llama3:8b", base_url="http://h", priority=1, cost_per_1k_tokens=0.0
        ),
        "openai": dict(default_model="gpt-4", api_key="k", priority=2, cost_per_1k_tokens=0.03),
        "anthropic": dict(
            default_model="claude", api_key="k", priority=3, cost_per_1k_tokens=0.015
        ),
        "custom": dict(default_model="m", api_key="k", priority=2, cost_per_1k_tokens=0.01),
    }
    for name, changes in overrides.items():
        base[name].update(changes)
    return {name: ProviderConfig(name=name, **values) for name, values in base.items()}


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        # ollama first, then priority high to low; openai and custom tie at 2: declared order
        (FallbackStrategy.SMART_FALLBACK, ["ollama", "anthropic", "openai", "custom"]),
        (FallbackStrategy.COST_OPTIMIZED, ["ollama", "custom", "anthropic", "openai"]),
        (FallbackStrategy.QUALITY_OPTIMIZED, ["anthropic", "openai", "custom", "ollama"]),
        (FallbackStrategy.ROUND_ROBIN, ["ollama", "openai", "anthropic", "custom"]),
        (FallbackStrategy.FAIL_FAST, ["ollama", "openai", "anthropic", "custom"]),
    ],
)
def test_order_of_each_strategy(strategy, expected):
    assert order_providers(providers(), strategy, DECLARED) == expected


def test_smart_fallback_puts_ollama_first_even_with_lowest_priority():
    order = order_providers(providers(ollama={"priority": -5}), "smart_fallback", DECLARED)
    assert order[0] == "ollama"


def test_cost_ties_keep_declared_order():
    same = providers(openai={"cost_per_1k_tokens": 0.01}, anthropic={"cost_per_1k_tokens": 0.01})
    assert order_providers(same, "cost_optimized", DECLARED) == [
        "ollama",
        "openai",
        "anthropic",
        "custom",
    ]


# Per 1k tokens: "reader" is cheap to read and dear to write, "writer" the other way round.
READER = ModelPrice(input_cost_per_token=0.1e-6, output_cost_per_token=10e-6)
WRITER = ModelPrice(input_cost_per_token=4e-6, output_cost_per_token=1e-6)


def split_priced() -> dict[str, ProviderConfig]:
    return {
        name: ProviderConfig(name=name, api_key="k", default_model=name, model_prices={name: p})
        for name, p in (("reader", READER), ("writer", WRITER))
    }


def test_cost_optimized_ranks_by_the_cost_of_the_request_at_hand():
    names = ["reader", "writer"]
    # 10,000 in, 100 out: reader 0.001 + 0.001 = $0.002, writer 0.04 + 0.0001 = $0.0401
    long_prompt = RequestSize(prompt_tokens=10_000, max_tokens=100)
    assert order_providers(split_priced(), "cost_optimized", names, long_prompt) == names
    # 100 in, 10,000 out: reader 0.00001 + 0.1 = $0.10001, writer 0.0004 + 0.01 = $0.0104
    long_answer = RequestSize(prompt_tokens=100, max_tokens=10_000)
    assert order_providers(split_priced(), "cost_optimized", names, long_answer) == [
        "writer",
        "reader",
    ]
    # nominal (1,000 and 1,000): reader $0.0101, writer $0.005
    assert order_providers(split_priced(), "cost_optimized", names) == ["writer", "reader"]


def test_cost_optimized_prices_a_model_override():
    both = split_priced()
    free = ModelPrice(input_cost_per_token=0, output_cost_per_token=0)
    both["reader"].model_prices = {"reader": READER, "other": free}
    both["writer"].model_prices = {"writer": WRITER, "other": READER}
    own_models = RequestSize(prompt_tokens=100, max_tokens=10_000)
    assert order_providers(both, "cost_optimized", ["reader", "writer"], own_models)[0] == "writer"
    # "other" is free on reader and costs $0.10001 on writer
    other = RequestSize(prompt_tokens=100, max_tokens=10_000, model="other")
    assert order_providers(both, "cost_optimized", ["writer", "reader"], other)[0] == "reader"


def test_cost_optimized_puts_a_model_without_a_price_after_every_priced_one():
    both = split_priced()
    # a custom endpoint's model LiteLLM's map does not know, no price set: $0 but unknown
    both["mystery"] = ProviderConfig(name="mystery", api_key="k", default_model="mystery-7b")
    names = ["mystery", "reader", "writer"]
    ranked = order_providers(both, "cost_optimized", names)
    assert ranked == ["writer", "reader", "mystery"]
    # a price set for it makes it a candidate like any other
    free = ModelPrice(input_cost_per_token=0, output_cost_per_token=0)
    both["mystery"].model_prices = {"mystery-7b": free}
    assert order_providers(both, "cost_optimized", names)[0] == "mystery"


def test_round_robin_ignores_cost_and_priority():
    skewed = providers(anthropic={"priority": 99, "cost_per_1k_tokens": 0.0})
    assert order_providers(skewed, "round_robin", DECLARED) == DECLARED


def test_disabled_providers_are_left_out_of_the_plan():
    plan = plan_fallback(providers(openai={"enabled": False}), "quality_optimized", DECLARED, 3)
    assert plan.order == ("anthropic", "custom", "ollama")
    assert plan.max_tries == 3 and not plan.raise_first_error


def test_fail_fast_tries_one_and_raises_its_error():
    plan = plan_fallback(providers(), "fail_fast", DECLARED, 3)
    assert plan.max_tries == 1 and plan.raise_first_error
    assert plan.order[0] == "ollama"


def test_unknown_strategy_is_rejected():
    with pytest.raises(ValueError):
        order_providers(providers(), "bogus", DECLARED)


def test_custom_providers_come_after_builtins_in_added_order():
    mixed = {
        "zeta": ProviderConfig(name="zeta", default_model="m", api_key="k"),
        **providers(),
        "alpha": ProviderConfig(name="alpha", default_model="m", api_key="k"),
    }
    config = LLMConfig(providers=mixed)
    assert config.declared_order() == ["ollama", "openai", "anthropic", "zeta", "custom", "alpha"]


def test_get_provider_order_skips_unconnectable_and_honours_max_attempts():
    ps = providers(openai={"api_key": None})
    config = LLMConfig(providers=ps, fallback_strategy="quality_optimized", max_fallback_attempts=2)
    assert config.get_provider_order() == ["anthropic", "custom"]
