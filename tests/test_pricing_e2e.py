"""Exact money end to end: the simulator reports each vendor's detailed usage, LiteLLM's
real code reads it, and the response, the ledger row and ``costs --json`` carry the same
dollars, to within 1e-9 USD of the hand calculation written beside each case.

Map prices are LiteLLM 1.110.2's bundled ones (test_the_map_still_says_what_the_cases_use
checks them through model_map); the others are the ones each case configures.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest

from leadfactory.llm import (
    LLMClient,
    LLMConfig,
    LLMConfigurationError,
    ProviderConfig,
    model_map,
    pricing,
)
from leadfactory.llm.cli import main
from leadfactory.llm.provider_config import ModelPrice
from leadfactory.llm.simulator import Usage

from .conftest import SENTINEL_KEY

USER = [{"role": "user", "content": "What is the capital of France?"}]
CUSTOM = "vllm"  # an OpenAI-compatible server of the user's, with the user's price
CUSTOM_PRICE = ModelPrice(
    input_cost_per_token=2e-7, output_cost_per_token=6e-7, cache_read_cost_per_token=5e-8
)


@dataclass(frozen=True)
class Case:
    model: str  # what the caller passes: provider/model
    usage: Usage  # what the simulator reports, in the vendor's shape
    cost: float  # the hand calculation
    split: tuple[
        int, int, int, int, int
    ]  # input (uncached), cache read, cache write, output, reasoning
    prices: tuple[float, float, float, float]  # input, output, cache read, cache write per token
    source: str
    details: dict = field(default_factory=dict)  # the usage's detail fields, OpenAI's shape


CASES = {
    # o3-mini: input 1.1e-6, cache read 5.5e-7, output 4.4e-6; no cache-write price (as input)
    "openai": Case(
        "openai/o3-mini",
        Usage(2000, 500, cached_tokens=1200, reasoning_tokens=300),
        800 * 1.1e-6 + 1200 * 5.5e-7 + 500 * 4.4e-6,  # = 0.00374
        (800, 1200, 0, 500, 300),
        (1.1e-6, 4.4e-6, 5.5e-7, 1.1e-6),
        "litellm_map",
        {
            "prompt_tokens_details": {"cached_tokens": 1200},
            "completion_tokens_details": {"reasoning_tokens": 300},
        },
    ),
    # claude-sonnet-4-5: input 3e-6, cache read 3e-7, cache write 3.75e-6, output 1.5e-5;
    # Anthropic reports 100 input tokens apart from its 2000 read and 1000 written
    "anthropic": Case(
        "anthropic/claude-sonnet-4-5",
        Usage(3100, 400, cached_tokens=2000, cache_write_tokens=1000),
        100 * 3e-6 + 2000 * 3e-7 + 1000 * 3.75e-6 + 400 * 1.5e-5,  # = 0.01065
        (100, 2000, 1000, 400, 0),
        (3e-6, 1.5e-5, 3e-7, 3.75e-6),
        "litellm_map",
        {"prompt_tokens_details": {"cached_tokens": 2000, "cache_write_tokens": 1000}},
    ),
    # Ollama, through its OpenAI-compatible /v1 (the default route): local, free
    "ollama": Case(
        "ollama/llama3:8b",
        Usage(500, 100),
        0.0,
        (500, 0, 0, 100, 0),
        (0.0, 0.0, 0.0, 0.0),
        "default",
    ),
    # Ollama's native /api/chat (prompt_eval_count, eval_count), as LiteLLM maps it
    "ollama-native": Case(
        "ollama/ollama_chat/llama3:8b",
        Usage(640, 32),
        0.0,
        (640, 0, 0, 32, 0),
        (0.0, 0.0, 0.0, 0.0),
        "default",
    ),
    # the user's price: input 2e-7, cache read 5e-8, output 6e-7; no cache-write part
    CUSTOM: Case(
        f"{CUSTOM}/my-model",
        Usage(1000, 250, cached_tokens=400),
        600 * 2e-7 + 400 * 5e-8 + 250 * 6e-7,  # = 0.00029
        (600, 400, 0, 250, 0),
        (2e-7, 6e-7, 5e-8, 2e-7),
        "user_model",
        {"prompt_tokens_details": {"cached_tokens": 400}},
    ),
}
PROTOCOL = {"ollama-native": "ollama"}  # the simulator's provider, when not the case's name


def test_the_hand_calculations_are_right():
    assert (CASES["openai"].cost, CASES["anthropic"].cost) == pytest.approx((0.00374, 0.01065))
    assert CASES[CUSTOM].cost == pytest.approx(0.00029)


def test_the_map_still_says_what_the_cases_use():
    keys = (
        "input_cost_per_token",
        "output_cost_per_token",
        "cache_read_input_token_cost",
        "cache_creation_input_token_cost",
    )
    for name in ("openai", "anthropic"):
        case = CASES[name]
        entry = model_map.map_entry(name, case.model.partition("/")[2])
        assert entry is not None
        mapped = [entry.get(key) for key in keys]
        mapped[3] = mapped[3] if mapped[3] is not None else mapped[0]  # none: as input
        assert tuple(mapped) == case.prices, name


@pytest.fixture
def config(sim_env) -> LLMConfig:
    try:
        url = sim_env.add_provider(CUSTOM, protocol="openai")
    except ValueError:  # the session's simulator has it already
        url = sim_env.base_url(CUSTOM)
    config = LLMConfig(enable_caching=False)
    config.providers[CUSTOM] = ProviderConfig(
        name=CUSTOM,
        api_key=SENTINEL_KEY,
        base_url=url,
        default_model="my-model",
        model_prices={"my-model": CUSTOM_PRICE},
    )
    return config


def costs_row(path, model: str, capsys) -> dict:
    assert main(["costs", "--ledger", str(path), "--by", "model", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    (row,) = [row for row in rows if row["model"] == model]
    return row


@pytest.mark.parametrize("name", list(CASES))
def test_each_wire_protocol_is_priced_to_the_hand_calculation(sim_env, config, name, capsys):
    case = CASES[name]
    sim_env.set_usage(PROTOCOL.get(name, name), case.usage, times=1)
    with LLMClient(config) as client:
        # temperature 1: the only one o3-mini takes
        response = client.chat_completion(USER, model=case.model, max_tokens=1000, temperature=1)
        (row,) = client.ledger.rows()
        path = client.ledger.path

    assert abs(response["cost"] - case.cost) <= 1e-9
    usage = response["usage"]
    prompt, completion = case.usage.prompt_tokens, case.usage.completion_tokens
    assert (usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"]) == (
        prompt,
        completion,
        prompt + completion,
    )
    for details, counts in case.details.items():  # the vendor's detail fields, OpenAI's shape
        assert {k: usage[details][k] for k in counts} == counts
    if not case.details:
        assert not usage.get("prompt_tokens_details", {}).get("cached_tokens")

    assert abs(row["cost_usd"] - case.cost) <= 1e-9
    billed = ("input_tokens", "cache_read_tokens", "cache_write_tokens", "output_tokens")
    assert tuple(row[k] for k in (*billed, "reasoning_tokens")) == case.split
    prices = ("input", "output", "cache_read", "cache_write")
    assert tuple(row[f"{p}_cost_per_token"] for p in prices) == pytest.approx(case.prices)
    assert (row["price_source"], row["estimated"], row["usage_clamped"]) == (case.source, 0, 0)
    assert (row["prompt_tokens"], row["completion_tokens"]) == (prompt, completion)

    total = costs_row(path, row["model"], capsys)
    assert abs(total["cost_usd"] - case.cost) <= 1e-9
    assert tuple(total[k] for k in billed) == case.split[:4]


def test_impossible_usage_is_clamped_marked_and_priced_as_clamped(sim_env, config):
    sim_env.set_usage("openai", Usage(100, 5, cached_tokens=150), times=1)
    with LLMClient(config) as client:
        response = client.chat_completion(USER, model="openai/gpt-4o", max_tokens=100)
        (row,) = client.ledger.rows()
    # gpt-4o: cache read 1.25e-6, output 1e-5; the 150 cached tokens clamped to the 100 sent
    expected = 100 * 1.25e-6 + 5 * 1e-5
    assert abs(response["cost"] - expected) <= 1e-9 and abs(row["cost_usd"] - expected) <= 1e-9
    assert response["usage"]["prompt_tokens_details"]["cached_tokens"] == 100
    assert (row["input_tokens"], row["cache_read_tokens"]) == (0, 100)
    assert (row["usage_clamped"], row["estimated"]) == (1, 1)
    assert row["charge_note"] == "cached_tokens=150 > prompt_tokens=100: clamped to 100"


# -- precedence, end to end ---------------------------------------------------------------

PRECEDENCE_USAGE = Usage(1000, 200)


def openai_with(**settings) -> LLMConfig:
    config = LLMConfig(enable_caching=False)
    config.providers["openai"] = config.providers["openai"].model_copy(update=settings)
    assert config.providers["openai"].has_user_blended_price is ("cost_per_1k_tokens" in settings)
    return config


@pytest.mark.parametrize(
    ("settings", "source", "cost"),
    [
        pytest.param(
            {
                "model_prices": {
                    "gpt-4o": ModelPrice(input_cost_per_token=1e-6, output_cost_per_token=4e-6)
                },
                "cost_per_1k_tokens": 0.02,  # also set: the model price wins
            },
            "user_model",
            1000 * 1e-6 + 200 * 4e-6,  # = 0.0018
            id="user-model-price",
        ),
        pytest.param(
            {"cost_per_1k_tokens": 0.02},
            "user_blended",
            1200 * 0.02 / 1000,  # = 0.024, input and output alike
            id="user-blended-price",
        ),
        pytest.param(
            {},
            "litellm_map",
            1000 * 2.5e-6 + 200 * 1e-5,  # gpt-4o in the map: = 0.0045
            id="litellm-map",
        ),
    ],
)
def test_each_price_source_wins_in_turn_and_the_row_names_it(sim_env, settings, source, cost):
    sim_env.set_usage("openai", PRECEDENCE_USAGE, times=1)
    config = openai_with(**settings)
    with LLMClient(config) as client:
        response = client.chat_completion(USER, model="openai/gpt-4o", max_tokens=100)
        (row,) = client.ledger.rows()
    assert row["price_source"] == source
    assert abs(response["cost"] - cost) <= 1e-9 and abs(row["cost_usd"] - cost) <= 1e-9


def test_a_model_the_map_lacks_is_unpriced_not_guessed(sim_env, monkeypatch):
    """The guide's 0.03 default prices nothing unless set: a model the map lacks has no
    price, so under the default budgets it is refused before any request; the local
    provider's 0 is the one ``default`` source."""
    monkeypatch.setattr(pricing, "map_entry", lambda *_: None)  # a map without gpt-4o
    pricing._resolve.cache_clear()
    try:
        with LLMClient(LLMConfig(enable_caching=False)) as client:
            with pytest.raises(LLMConfigurationError, match="'gpt-4o' has no price"):
                client.chat_completion(USER, model="openai/gpt-4o", max_tokens=100)
            client.chat_completion(USER, model="ollama", max_tokens=100)
            rows = client.ledger.rows()
    finally:
        pricing._resolve.cache_clear()
    assert sim_env.request_count("openai") == 0
    assert [(row["provider"], row["price_source"]) for row in rows] == [("ollama", "default")]


def test_a_model_no_source_prices_is_unpriced_and_the_row_says_so(sim_env, config):
    config.cost_config.max_cost_per_request = None  # no budget: an unpriced model is called
    config.cost_config.daily_cost_limit = config.cost_config.monthly_cost_limit = None
    sim_env.set_usage(CUSTOM, PRECEDENCE_USAGE, times=1)
    with LLMClient(config) as client:
        response = client.chat_completion(USER, model=f"{CUSTOM}/not-in-any-map", max_tokens=100)
        (row,) = client.ledger.rows()
    assert (row["price_source"], row["cost_usd"], response["cost"]) == ("unpriced", 0.0, 0.0)
    assert (row["input_tokens"], row["output_tokens"]) == (1000, 200)


# -- the same row from the async client, and in a PostgreSQL ledger ----------------------


def billed_row(row: dict) -> tuple:
    names = ("input_tokens", "cache_read_tokens", "cache_write_tokens", "output_tokens")
    return (*(row[k] for k in (*names, "reasoning_tokens")), row["price_source"])


def test_the_async_client_writes_the_same_row(sim_env, config):
    import asyncio

    case = CASES["anthropic"]
    sim_env.set_usage("anthropic", case.usage, times=1)

    with LLMClient(config) as client:
        response = asyncio.run(client.achat_completion(USER, model=case.model, max_tokens=1000))
        rows = client.ledger.rows()

    (row,) = rows
    assert abs(response["cost"] - case.cost) <= 1e-9 and abs(row["cost_usd"] - case.cost) <= 1e-9
    assert billed_row(row) == (*case.split, case.source)


def test_a_postgresql_ledger_gets_the_same_row(sim_env, config, postgres_url):
    case = CASES["openai"]
    sim_env.set_usage("openai", case.usage, times=1)
    config.ledger_url = postgres_url
    with LLMClient(config) as client:
        response = client.chat_completion(USER, model=case.model, max_tokens=1000, temperature=1)
        (row,) = client.ledger.rows()
    assert abs(response["cost"] - case.cost) <= 1e-9 and abs(row["cost_usd"] - case.cost) <= 1e-9
    assert billed_row(row) == (*case.split, case.source)
    prices = tuple(
        row[f"{p}_cost_per_token"] for p in ("input", "output", "cache_read", "cache_write")
    )
    assert prices == pytest.approx(case.prices)
