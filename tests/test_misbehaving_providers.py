"""Providers that answer 200 but misbehave: usage missing, negative, huge or absurd, no
answer at all, or an answer trickled past the deadline. Real HTTP against the simulator,
sync and async, for each wire protocol.

The rule under test: a call that may have reached a provider is charged, a charge is
never a crash, and usage outside what the request could have produced is replaced by a
bounded figure marked ``estimated`` (see leadfactory/llm/charges.py).
"""

from __future__ import annotations

import asyncio

import pytest

from leadfactory.llm import LLMClient, LLMConfig, LLMProviderError, LLMQuotaExceededError
from leadfactory.llm.simulator import Fault
from leadfactory.llm.tokens import estimate_prompt_tokens, estimate_text_tokens

from .conftest import list_cost

USER = [{"role": "user", "content": "What is the capital of France?"}]
PROTOCOLS = ["openai", "anthropic", "ollama"]
BACKUP = {"openai": "anthropic", "anthropic": "openai", "ollama": "openai"}
MAX_TOKENS = 20
COMPLETION_BOUND = 2 * MAX_TOKENS + 256  # charges.completion_bound for one choice

# fault -> what the client does with it: "served" (with the usage charged as said), or
# "falls back" (the failing provider's row is an error, the backup answers)
TABLE = {
    Fault.NO_USAGE: "served, usage estimated",
    Fault.NEGATIVE_USAGE: "served, completion estimated",
    Fault.HUGE_USAGE: "served, completion clamped",
    Fault.ABSURD_USAGE: "served, completion clamped",
    Fault.EMPTY_CHOICES: "falls back, charged",
    Fault.TRICKLE: "falls back, charged the reservation",  # cut off at the attempt's deadline
}


def expected(protocol: str, fault: Fault) -> str:
    if protocol == "anthropic" and fault is Fault.NO_USAGE:
        # LiteLLM cannot read an Anthropic answer without usage (a KeyError inside it):
        # the provider answered (200) and may bill it, so it is charged its reservation,
        # not retried, and the backup answers.
        return "falls back, unread, charged the reservation"
    return TABLE[fault]


def sync_call(client: LLMClient, **kwargs) -> dict:
    return client.chat_completion(USER, max_tokens=MAX_TOKENS, **kwargs)


def async_call(client: LLMClient, **kwargs) -> dict:
    return asyncio.run(client.achat_completion(USER, max_tokens=MAX_TOKENS, **kwargs))


DRIVERS = {"sync": sync_call, "async": async_call}


def make_client(failing: str, *, caching: bool = False) -> LLMClient:
    config = LLMConfig(fallback_strategy="quality_optimized", enable_caching=caching)
    for name in list(config.providers):
        if name not in (failing, BACKUP[failing]):
            del config.providers[name]
    config.providers[failing].priority = 10
    config.providers[failing].max_retries = 2
    return LLMClient(config)


@pytest.mark.parametrize("driver", list(DRIVERS))
@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("fault", list(TABLE), ids=lambda f: f.value)
def test_misbehaving_provider_table(sim_env, driver, protocol, fault):
    sim_env.set_fault(protocol, fault, delay=0.05)  # TRICKLE: a byte every 50 ms
    client = make_client(protocol, caching=True)
    if fault is Fault.TRICKLE:
        client.config.providers[protocol].timeout = 0.5
        client.config.providers[protocol].max_retries = 0
    response = DRIVERS[driver](client)
    rows = client.ledger.rows()
    assert all(r["outcome"] != "pending" for r in rows)
    outcome = expected(protocol, fault)
    if outcome.startswith("served"):
        assert response["provider"] == protocol
        assert "France" in response["choices"][0]["message"]["content"]
        [row] = rows
        assert (row["outcome"], row["estimated"]) == ("success", 1)
        usage = response["usage"]
        assert (row["prompt_tokens"], row["completion_tokens"]) == (
            usage["prompt_tokens"],
            usage["completion_tokens"],
        )
        assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
        assert row["cost_usd"] == pytest.approx(response["cost"])
        charged = list_cost(client, protocol, usage["prompt_tokens"], usage["completion_tokens"])
        assert response["cost"] == pytest.approx(charged)
        text = estimate_text_tokens(response["choices"][0]["message"]["content"])
        if fault is Fault.NO_USAGE:
            assert usage["prompt_tokens"] == estimate_prompt_tokens(USER)
        if fault in (Fault.NO_USAGE, Fault.NEGATIVE_USAGE):
            assert usage["completion_tokens"] == text
        else:
            assert usage["completion_tokens"] == COMPLETION_BOUND
            assert usage["prompt_tokens"] > 0
        assert sim_env.request_count(BACKUP[protocol]) == 0
        return
    # the provider failed: the backup answered, and the failure was not served or cached
    assert response["provider"] == BACKUP[protocol]
    failed = [r for r in rows if r["provider"] == protocol]
    assert [r["outcome"] for r in failed] == ["error"]  # not retried on the same provider
    assert sim_env.request_count(protocol) == 1
    if outcome.endswith("charged the reservation"):  # the provider may bill it anyway
        error_class = "LLMProviderError" if "unread" in outcome else "LLMTimeoutError"
        assert failed[0]["error_class"] == error_class and failed[0]["estimated"] == 1
        assert failed[0]["completion_tokens"] == MAX_TOKENS
        charged = list_cost(
            client, protocol, failed[0]["prompt_tokens"], failed[0]["completion_tokens"]
        )
        assert failed[0]["cost_usd"] == pytest.approx(charged)
        return
    assert failed[0]["error_class"] == "LLMProviderError"
    if outcome == "falls back, charged":  # it reached the provider, which reported its usage
        assert failed[0]["prompt_tokens"] > 0 and failed[0]["estimated"] == 0
        charged = list_cost(
            client, protocol, failed[0]["prompt_tokens"], failed[0]["completion_tokens"]
        )
        assert failed[0]["cost_usd"] == pytest.approx(charged)
        # the backup's answer is cached; the empty one never was
        assert DRIVERS[driver](client)["cached"] is True
        assert sim_env.request_count(protocol) == 1


@pytest.mark.parametrize("driver", list(DRIVERS))
def test_empty_answer_alone_is_a_provider_error(sim_env, driver):
    sim_env.set_fault("openai", Fault.EMPTY_CHOICES)
    config = LLMConfig(enable_caching=True)
    client = LLMClient(config)
    with pytest.raises(LLMProviderError, match="empty answer"):
        DRIVERS[driver](client, model="openai")
    with pytest.raises(LLMProviderError):  # not cached: asked again
        DRIVERS[driver](client, model="openai")
    assert sim_env.request_count("openai") == 2
    rows = client.ledger.rows()
    assert [(r["outcome"], r["error_class"]) for r in rows] == [("error", "LLMProviderError")] * 2
    assert all(r["cost_usd"] > 0 for r in rows)  # it reached the provider: charged


@pytest.mark.parametrize("driver", list(DRIVERS))
def test_answers_without_usage_still_count_against_the_budget(sim_env, monkeypatch, driver):
    monkeypatch.setenv("LLM_DAILY_COST_LIMIT", "0.004")
    monkeypatch.setenv("OPENAI_INPUT_COST_PER_1K_TOKENS", "0.03")  # gpt-4's list price:
    monkeypatch.setenv("OPENAI_OUTPUT_COST_PER_1K_TOKENS", "0.06")  # a few calls fit
    sim_env.set_fault("openai", Fault.NO_USAGE)
    client = LLMClient(LLMConfig(enable_caching=False))
    served = 0
    with pytest.raises(LLMQuotaExceededError):
        for _ in range(50):
            DRIVERS[driver](client, model="openai")
            served += 1
    assert 1 <= served < 10
    assert client.ledger.spend() <= 0.004
    assert all(r["estimated"] == 1 for r in client.ledger.rows())


@pytest.mark.parametrize("driver", list(DRIVERS))
def test_absurd_usage_does_not_spend_the_month(sim_env, monkeypatch, driver):
    monkeypatch.setenv("LLM_MONTHLY_COST_LIMIT", "100")
    sim_env.set_fault("openai", Fault.ABSURD_USAGE, times=1)
    client = LLMClient(LLMConfig(enable_caching=False))
    first = DRIVERS[driver](client, model="openai")
    assert first["usage"]["completion_tokens"] == COMPLETION_BOUND
    bounded = list_cost(client, "openai", first["usage"]["prompt_tokens"], COMPLETION_BOUND)
    assert first["cost"] == pytest.approx(bounded) and bounded < 1  # not $60,000,000
    assert DRIVERS[driver](client, model="openai")["provider"] == "openai"  # still admitted
