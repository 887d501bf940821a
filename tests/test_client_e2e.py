"""End-to-end over real HTTP: LiteLLM's real code against the simulator, per wire protocol."""

from __future__ import annotations

import json

import pytest

from leadfactory.llm import (
    AllProvidersFailedError,
    LLMAuthenticationError,
    LLMClient,
    LLMConfig,
    LLMConnectionError,
    LLMModelNotFoundError,
    LLMProviderError,
    LLMQuotaExceededError,
    LLMRateLimitError,
    LLMTimeoutError,
    LLMValidationError,
)
from leadfactory.llm.simulator import Fault

from .conftest import SENTINEL_KEY, list_cost

USER = [{"role": "user", "content": "What is the capital of France?"}]
PROTOCOLS = ["openai", "anthropic", "ollama"]
BACKUP = {"openai": "ollama", "anthropic": "openai", "ollama": "openai"}
RETRIES = 2

# fault -> (error class, retried on the same provider?)
FAULTS = {
    Fault.REFUSE: (LLMConnectionError, False),  # with a provider left: fail over at once
    Fault.RESET: (LLMConnectionError, True),
    Fault.HANG: (LLMTimeoutError, True),
    Fault.SERVER_ERROR: (LLMProviderError, True),
    Fault.UNAVAILABLE: (LLMProviderError, True),
    Fault.MALFORMED: (LLMProviderError, True),
    Fault.TRUNCATED: (LLMConnectionError, True),
    Fault.RATE_LIMIT: (LLMRateLimitError, False),
    Fault.INSUFFICIENT_QUOTA: (LLMQuotaExceededError, False),
    Fault.UNAUTHORIZED: (LLMAuthenticationError, False),
    Fault.FORBIDDEN: (LLMAuthenticationError, False),
    Fault.NOT_FOUND: (LLMModelNotFoundError, False),
    Fault.BAD_REQUEST: (LLMValidationError, False),
}

BILLED_FAULTS = {Fault.HANG}  # failures charged what was reserved, marked estimated


def expected_error(protocol: str, fault: Fault) -> tuple[type, bool]:
    if protocol == "ollama" and fault is Fault.INSUFFICIENT_QUOTA:
        # Ollama's errors are a bare {"error": "..."} with no code to tell quota from
        # rate limit, and we never classify by message text: a 429 is a rate limit.
        return LLMRateLimitError, False
    return FAULTS[fault]


def make_client(failing: str, backup: str | None) -> LLMClient:
    config = LLMConfig(fallback_strategy="quality_optimized", enable_caching=False)
    keep = {failing} | ({backup} if backup else set())
    for name in list(config.providers):
        if name not in keep:
            del config.providers[name]
    failing_provider = config.providers[failing]
    failing_provider.priority = 10
    failing_provider.max_retries = RETRIES
    failing_provider.timeout = 0.5
    return LLMClient(config)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_normal_answer_has_the_documented_shape(sim_env, protocol):
    client = LLMClient(LLMConfig(enable_caching=False))
    response = client.chat_completion(USER, model=protocol, temperature=0, max_tokens=50)
    check_normal_answer(sim_env, client, response, protocol)


def check_normal_answer(sim, client: LLMClient, response: dict, protocol: str) -> None:
    """The documented response dict, what was sent, and the ledger row (sync and async)."""
    assert response["provider"] == protocol
    assert response["object"] == "chat.completion"
    assert "France" in response["choices"][0]["message"]["content"]
    assert response["choices"][0]["message"]["role"] == "assistant"
    usage = response["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0
    charged = list_cost(client, protocol, usage["prompt_tokens"], usage["completion_tokens"])
    assert response["cost"] == pytest.approx(charged)
    assert response["cached"] is False and response["latency_ms"] > 0
    assert response["attempts"] == [
        {
            "provider": protocol,
            "outcome": "success",
            "error": None,
            "detail": None,
            "ms": response["attempts"][0]["ms"],
        }
    ]
    json.dumps(response)  # a plain, serialisable dict
    sent = sim.requests(protocol)[-1]["json"]
    assert sent.get("temperature", sent.get("options", {}).get("temperature")) == 0
    [row] = client.ledger.rows()
    assert row["provider"] == protocol and row["outcome"] == "success"
    assert row["error_class"] is None
    assert row["cost_usd"] == pytest.approx(response["cost"])
    assert row["prompt_tokens"] == usage["prompt_tokens"]
    assert row["completion_tokens"] == usage["completion_tokens"]


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("fault", list(FAULTS), ids=lambda f: f.value)
def test_fault_falls_back_after_the_documented_retries(sim_env, protocol, fault):
    sim_env.set_fault(protocol, fault, retry_after=3)
    client = make_client(protocol, BACKUP[protocol])
    response = client.chat_completion(USER, max_tokens=20)
    check_fallback(sim_env, client, response, protocol, fault)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_slow_answer_within_the_timeout_is_waited_for(sim_env, protocol):
    sim_env.set_fault(protocol, Fault.DELAY, delay=0.3)
    client = make_client(protocol, BACKUP[protocol])
    client.config.providers[protocol].timeout = 2.0
    response = client.chat_completion(USER, max_tokens=20)
    check_slow_answer(sim_env, client, response, protocol)


def check_fallback(sim, client: LLMClient, response: dict, protocol: str, fault: Fault) -> None:
    """The failing provider's attempts, retries and ledger rows, then the backup's answer.

    Shared by the sync and async fault matrices (tests/test_async_e2e.py).
    """
    error_class, retried = expected_error(protocol, fault)
    backup = BACKUP[protocol]
    assert response["provider"] == backup
    failures = [a for a in response["attempts"] if a["provider"] == protocol]
    assert all(a["outcome"] == "error" for a in failures)
    assert {a["error"] for a in failures} == {error_class.__name__}
    expected_attempts = 1 + RETRIES if retried else 1
    assert len(failures) == expected_attempts
    if fault is not Fault.REFUSE:  # refused connections never reach the server
        assert sim.request_count(protocol) == expected_attempts
    assert sim.request_count(backup) == 1
    rows = client.ledger.rows()
    failed = [r for r in rows if r["provider"] == protocol]
    assert [(r["outcome"], r["error_class"]) for r in failed] == [
        ("error", error_class.__name__)
    ] * expected_attempts
    assert all(r["reserved_usd"] == 0 for r in failed)
    if fault in BILLED_FAULTS:  # the provider may have answered after we stopped waiting
        for r in failed:  # charged what was reserved: the prompt and the whole max_tokens
            assert r["estimated"] == 1 and r["completion_tokens"] == 20
            charged = list_cost(client, protocol, r["prompt_tokens"], r["completion_tokens"])
            assert r["cost_usd"] == pytest.approx(charged)
    else:
        assert all(r["cost_usd"] == 0 and r["estimated"] == 0 for r in failed)  # not charged
    [won] = [r for r in rows if r["provider"] == backup]
    assert won["outcome"] == "success" and won["error_class"] is None
    assert won["cost_usd"] == pytest.approx(response["cost"])
    assert won["prompt_tokens"] == response["usage"]["prompt_tokens"]
    assert won["completion_tokens"] == response["usage"]["completion_tokens"]
    assert all(r["outcome"] != "pending" for r in rows)


def check_slow_answer(sim, client: LLMClient, response: dict, protocol: str) -> None:
    """A slow provider inside its timeout answers: no retry, no fallback, one success row."""
    assert response["provider"] == protocol
    assert [a["outcome"] for a in response["attempts"]] == ["success"]
    assert response["latency_ms"] >= 300
    assert sim.request_count(protocol) == 1 and sim.request_count(BACKUP[protocol]) == 0
    [row] = client.ledger.rows()
    assert (row["provider"], row["outcome"], row["error_class"]) == (protocol, "success", None)


LAST_PROVIDER_FAULTS = [
    Fault.REFUSE,
    Fault.SERVER_ERROR,
    Fault.RATE_LIMIT,
    Fault.UNAUTHORIZED,
    Fault.NOT_FOUND,
    Fault.INSUFFICIENT_QUOTA,
]


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("fault", LAST_PROVIDER_FAULTS, ids=lambda f: f.value)
def test_error_is_classified_when_no_provider_is_left(sim_env, protocol, fault):
    sim_env.set_fault(protocol, fault, retry_after=3)
    client = make_client(protocol, None)
    with pytest.raises(AllProvidersFailedError) as caught:
        client.chat_completion(USER, max_tokens=20)
    check_last_provider_error(client, caught.value, protocol, fault)


def check_last_provider_error(
    client: LLMClient, failure: AllProvidersFailedError, protocol: str, fault: Fault
) -> None:
    """The only provider's classified error, its message (no key) and its ledger rows."""
    error_class, _ = expected_error(protocol, fault)
    error = failure.provider_errors[protocol]
    assert type(error) is error_class
    assert error.provider == protocol
    assert error.__cause__ is not None
    assert protocol in str(failure) and error_class.__name__ in str(failure)
    assert SENTINEL_KEY not in str(failure) and SENTINEL_KEY not in repr(error)
    if fault is Fault.RATE_LIMIT:
        assert error.retry_after == pytest.approx(3, abs=1)
    rows = client.ledger.rows()
    assert rows and {(r["outcome"], r["error_class"]) for r in rows} == {
        ("error", error_class.__name__)
    }


def fail_fast_client(protocol: str) -> LLMClient:
    """fail_fast with ``protocol`` first in declared order."""
    config = LLMConfig(fallback_strategy="fail_fast", enable_caching=False)
    declared = ["ollama", "openai", "anthropic"]
    for earlier in declared[: declared.index(protocol)]:
        config.providers[earlier].enabled = False
    return LLMClient(config)


def check_fail_fast(sim, client: LLMClient, error: LLMAuthenticationError, protocol: str) -> None:
    """One request in all, raised as itself, and its ledger row."""
    assert error.provider == protocol
    assert sum(sim.request_count(p) for p in PROTOCOLS) == 1
    [row] = client.ledger.rows()
    assert (row["provider"], row["outcome"], row["error_class"]) == (
        protocol,
        "error",
        "LLMAuthenticationError",
    )


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_fail_fast_raises_the_classified_error_itself(sim_env, protocol):
    sim_env.set_fault(protocol, Fault.UNAUTHORIZED)
    client = fail_fast_client(protocol)
    with pytest.raises(LLMAuthenticationError) as caught:
        client.chat_completion(USER, max_tokens=20)
    check_fail_fast(sim_env, client, caught.value, protocol)


def test_retry_then_success_on_the_same_provider(sim_env):
    sim_env.set_fault("openai", Fault.SERVER_ERROR, times=2)
    client = make_client("openai", "ollama")
    response = client.chat_completion(USER, max_tokens=20)
    assert response["provider"] == "openai"
    assert [a["outcome"] for a in response["attempts"]] == ["error", "error", "success"]
    assert sim_env.request_count("openai") == 3 and sim_env.request_count("ollama") == 0


def test_litellm_never_retries_on_its_own(sim_env):
    sim_env.set_fault("openai", Fault.RATE_LIMIT, retry_after=0)
    client = make_client("openai", None)
    with pytest.raises(AllProvidersFailedError):
        client.chat_completion(USER, max_tokens=20)
    assert sim_env.request_count("openai") == 1


def test_bad_input_costs_nothing(sim_env):
    client = LLMClient(LLMConfig(enable_caching=False))
    for bad in ([], "hello", [{"role": "robot", "content": "x"}], [{"role": "user"}]):
        with pytest.raises(LLMValidationError) as caught:
            client.chat_completion(bad)
        assert caught.value.provider is None and "messages" in str(caught.value)
    with pytest.raises(LLMValidationError, match="temperature"):
        client.chat_completion(USER, temperature=3)
    with pytest.raises(LLMValidationError, match="max_tokens"):
        client.chat_completion(USER, max_tokens=0)
    with pytest.raises(LLMValidationError, match="bogus"):
        client.chat_completion(USER, bogus=1)
    assert sum(sim_env.request_count(p) for p in PROTOCOLS) == 0
    assert client.ledger.rows() == []


def test_custom_openai_compatible_provider(sim_env):
    from leadfactory.llm import ProviderConfig

    url = sim_env.add_provider("custom", protocol="openai")
    config = LLMConfig(enable_caching=False)
    config.providers["custom"] = ProviderConfig(
        name="custom",
        api_key=SENTINEL_KEY,
        default_model="custom-model",
        base_url=url,
        cost_per_1k_tokens=0.01,
    )
    response = LLMClient(config).chat_completion(USER, model="custom")
    assert response["provider"] == "custom"
    assert sim_env.requests("custom")[-1]["json"]["model"] == "custom-model"


def test_refused_connection_is_retried_when_no_other_provider_is_left(sim_env):
    sim_env.set_fault("openai", Fault.REFUSE)
    client = make_client("openai", None)
    client.config.providers["openai"].retry_delay = 0.01
    with pytest.raises(AllProvidersFailedError) as caught:
        client.chat_completion(USER, max_tokens=20)
    attempts = caught.value.metadata["attempts"]
    assert [a["error"] for a in attempts] == ["LLMConnectionError"] * (1 + RETRIES)
    assert caught.value.provider_errors["openai"].metadata["refused"] is True
    assert "connection refused" in str(caught.value)


@pytest.mark.parametrize("model", ["anthropic", "anthropic/claude-3-5-haiku-20241022"])
def test_pinning_a_provider_that_is_not_configured_costs_nothing(sim_env, model):
    config = LLMConfig(enable_caching=False)
    del config.providers["anthropic"]
    client = LLMClient(config)
    with pytest.raises(LLMValidationError, match="anthropic provider, which is not configured"):
        client.chat_completion(USER, model=model, max_tokens=20)
    assert sum(sim_env.request_count(p) for p in PROTOCOLS) == 0
    assert client.ledger.rows() == []
