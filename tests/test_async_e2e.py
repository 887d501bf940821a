"""End-to-end over real HTTP for the asyncio twin, ``LLMClient.achat_completion``.

Mirrors tests/test_client_e2e.py (the same fault matrix, per wire protocol); what only
the async path can get wrong is in tests/test_async_concurrency.py. There is no
pytest-asyncio: each test drives its coroutine with ``asyncio.run``.
"""

from __future__ import annotations

import pytest

from leadfactory.llm import (
    AllProvidersFailedError,
    LLMAuthenticationError,
    LLMClient,
    LLMConfig,
    LLMValidationError,
)
from leadfactory.llm.simulator import Fault

from .async_calls import achat
from .async_calls import litellm_loaded as litellm_loaded  # an autouse fixture
from .conftest import SENTINEL_KEY
from .test_client_e2e import (  # the sync tests' fault table and client, shared
    BACKUP,
    FAULTS,
    LAST_PROVIDER_FAULTS,
    PROTOCOLS,
    USER,
    check_fail_fast,
    check_fallback,
    check_last_provider_error,
    check_normal_answer,
    check_slow_answer,
    fail_fast_client,
    make_client,
)

# -- the sync tests' twins ---------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_async_normal_answer_has_the_documented_shape(sim_env, protocol):
    client = LLMClient(LLMConfig(enable_caching=False))
    response = achat(client, USER, model=protocol, temperature=0, max_tokens=50)
    check_normal_answer(sim_env, client, response, protocol)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_async_and_sync_answers_agree(sim_env, protocol):
    client = LLMClient(LLMConfig(enable_caching=False))
    sync = client.chat_completion(USER, model=protocol, temperature=0, max_tokens=50)
    asynchronous = achat(client, USER, model=protocol, temperature=0, max_tokens=50)
    volatile = {"id", "created", "latency_ms", "request_id", "attempts"}
    assert {k: v for k, v in sync.items() if k not in volatile} == {
        k: v for k, v in asynchronous.items() if k not in volatile
    }
    assert sim_env.requests(protocol)[0]["json"] == sim_env.requests(protocol)[1]["json"]


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("fault", list(FAULTS), ids=lambda f: f.value)
def test_async_fault_falls_back_after_the_documented_retries(sim_env, protocol, fault):
    sim_env.set_fault(protocol, fault, retry_after=3)
    client = make_client(protocol, BACKUP[protocol])
    if fault is Fault.HANG:  # each attempt waits out the whole timeout: keep it short
        client.config.providers[protocol].timeout = 0.3
    response = achat(client, USER, max_tokens=20)
    check_fallback(sim_env, client, response, protocol, fault)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_async_slow_answer_within_the_timeout_is_waited_for(sim_env, protocol):
    sim_env.set_fault(protocol, Fault.DELAY, delay=0.3)
    client = make_client(protocol, BACKUP[protocol])
    client.config.providers[protocol].timeout = 2.0
    response = achat(client, USER, max_tokens=20)
    check_slow_answer(sim_env, client, response, protocol)


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("fault", LAST_PROVIDER_FAULTS, ids=lambda f: f.value)
def test_async_error_is_classified_when_no_provider_is_left(sim_env, protocol, fault):
    sim_env.set_fault(protocol, fault, retry_after=3)
    client = make_client(protocol, None)
    with pytest.raises(AllProvidersFailedError) as caught:
        achat(client, USER, max_tokens=20)
    check_last_provider_error(client, caught.value, protocol, fault)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_async_fail_fast_raises_the_classified_error_itself(sim_env, protocol):
    sim_env.set_fault(protocol, Fault.UNAUTHORIZED)
    client = fail_fast_client(protocol)
    with pytest.raises(LLMAuthenticationError) as caught:
        achat(client, USER, max_tokens=20)
    check_fail_fast(sim_env, client, caught.value, protocol)


def test_async_retry_then_success_on_the_same_provider(sim_env):
    sim_env.set_fault("openai", Fault.SERVER_ERROR, times=2)
    client = make_client("openai", "ollama")
    response = achat(client, USER, max_tokens=20)
    assert response["provider"] == "openai"
    assert [a["outcome"] for a in response["attempts"]] == ["error", "error", "success"]
    assert sim_env.request_count("openai") == 3 and sim_env.request_count("ollama") == 0
    outcomes = [(r["provider"], r["outcome"]) for r in client.ledger.rows()]
    assert outcomes == [("openai", "error")] * 2 + [("openai", "success")]


def test_async_litellm_never_retries_on_its_own(sim_env):
    sim_env.set_fault("openai", Fault.RATE_LIMIT, retry_after=0)
    client = make_client("openai", None)
    with pytest.raises(AllProvidersFailedError):
        achat(client, USER, max_tokens=20)
    assert sim_env.request_count("openai") == 1


def test_async_bad_input_costs_nothing(sim_env):
    client = LLMClient(LLMConfig(enable_caching=False))
    for bad in ([], "hello", [{"role": "robot", "content": "x"}], [{"role": "user"}]):
        with pytest.raises(LLMValidationError) as caught:
            achat(client, bad)
        assert caught.value.provider is None and "messages" in str(caught.value)
    with pytest.raises(LLMValidationError, match="temperature"):
        achat(client, USER, temperature=3)
    with pytest.raises(LLMValidationError, match="max_tokens"):
        achat(client, USER, max_tokens=0)
    with pytest.raises(LLMValidationError, match="bogus"):
        achat(client, USER, bogus=1)
    with pytest.raises(LLMValidationError, match="stream"):
        achat(client, USER, stream="yes")  # stream=True streams: docs/streaming.md
    assert sum(sim_env.request_count(p) for p in PROTOCOLS) == 0
    assert client.ledger.rows() == []


def test_async_custom_openai_compatible_provider(sim_env):
    from leadfactory.llm import ProviderConfig

    name = "custom_async"  # the simulator lives for the session: add the listener once
    try:
        url = sim_env.add_provider(name, protocol="openai")
    except ValueError:
        url = sim_env.base_url(name)
    config = LLMConfig(enable_caching=False)
    config.providers[name] = ProviderConfig(
        name=name,
        api_key=SENTINEL_KEY,
        default_model="custom-model",
        base_url=url,
        cost_per_1k_tokens=0.01,
    )
    response = achat(LLMClient(config), USER, model=name)
    assert response["provider"] == name
    assert sim_env.requests(name)[-1]["json"]["model"] == "custom-model"
