"""Rate limits, Retry-After and cooldowns through the client, against the simulator."""

from __future__ import annotations

import asyncio

import pytest

from leadfactory.llm import LLMClient, LLMConfig, LLMRateLimitError
from leadfactory.llm.simulator import Fault

from .fake_clock import FakeClock

USER = [{"role": "user", "content": "Hello"}]


def client_for(clock: FakeClock, **settings) -> LLMClient:
    config = LLMConfig(enable_caching=False, fallback_strategy="round_robin", **settings)
    return LLMClient(config, clock=clock, sleep=clock.sleep)


def test_429_with_retry_after_moves_on_at_once_and_pauses_the_provider(sim_env):
    clock = FakeClock()
    client = client_for(clock)
    sim_env.set_fault("ollama", Fault.RATE_LIMIT, retry_after=30)
    first = client.chat_completion(USER)
    assert first["provider"] == "openai" and clock.slept == []
    assert [a["outcome"] for a in first["attempts"]] == ["error", "success"]
    assert sim_env.request_count("ollama") == 1
    # for every later call in this client the provider is paused until Retry-After passes
    second = client.chat_completion(USER)
    assert second["attempts"][0] == {
        **second["attempts"][0],
        "provider": "ollama",
        "outcome": "skipped",
        "reason": "rate_limited",
    }
    assert sim_env.request_count("ollama") == 1
    clock.now += 31
    sim_env.clear_faults()
    assert client.chat_completion(USER)["provider"] == "ollama"


def test_http_date_retry_after(sim_env):
    from datetime import UTC, datetime, timedelta
    from email.utils import format_datetime

    clock = FakeClock()
    client = client_for(clock)
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)
    sim_env.set_fault("ollama", Fault.RATE_LIMIT, retry_after=when)
    client.config.providers["openai"].enabled = False
    client.config.providers["anthropic"].enabled = False
    with pytest.raises(Exception) as caught:
        client.chat_completion(USER)
    error = caught.value.provider_errors["ollama"]
    assert isinstance(error, LLMRateLimitError) and 100 < error.retry_after <= 120


@pytest.mark.parametrize(("setting", "cap"), [(None, 600.0), ("45", 45.0)])
def test_a_huge_retry_after_pauses_for_the_cap_and_says_so(sim_env, monkeypatch, setting, cap):
    if setting is not None:
        monkeypatch.setenv("LLM_MAX_RETRY_AFTER", setting)
    clock = FakeClock()
    client = client_for(clock)
    sim_env.set_fault("ollama", Fault.RATE_LIMIT, retry_after=1_000_000_000)  # 31 years
    response = client.chat_completion(USER)
    assert response["provider"] == "openai"
    first = response["attempts"][0]
    assert (first["provider"], first["error"]) == ("ollama", "LLMRateLimitError")
    assert (first["retry_after_requested"], first["paused_for"]) == (1_000_000_000, cap)
    sim_env.clear_faults()
    clock.now += cap - 1
    assert client.chat_completion(USER)["attempts"][0]["reason"] == "rate_limited"
    clock.now += 1
    assert client.chat_completion(USER)["provider"] == "ollama"  # the pause is over


def test_a_capped_retry_after_is_what_the_error_reports(sim_env):
    client = client_for(FakeClock(), max_retry_after=120)
    for name in ("openai", "anthropic"):
        client.config.providers[name].enabled = False
    sim_env.set_fault("ollama", Fault.RATE_LIMIT, retry_after=1_000_000_000)
    with pytest.raises(Exception) as caught:
        client.chat_completion(USER)
    error = caught.value.provider_errors["ollama"]
    assert isinstance(error, LLMRateLimitError) and error.retry_after == 120
    assert error.metadata["retry_after_requested"] == 1_000_000_000


def test_a_retry_after_within_the_cap_is_kept_as_is(sim_env):
    clock = FakeClock()
    client = client_for(clock, max_retry_after=60)
    sim_env.set_fault("ollama", Fault.RATE_LIMIT, retry_after=59)
    first = client.chat_completion(USER)["attempts"][0]
    assert "retry_after_requested" not in first and "paused_for" not in first
    sim_env.clear_faults()
    clock.now += 58
    assert client.chat_completion(USER)["attempts"][0]["reason"] == "rate_limited"
    clock.now += 1
    assert client.chat_completion(USER)["provider"] == "ollama"


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_the_rpm_window_counts_requests_when_they_leave(sim_env, monkeypatch, mode):
    """The first call of a process imports LiteLLM (seconds: 5 here, on the fake clock).
    A permit taken before the import would be dated 5 s before its request left, and
    the window would admit a second request 55 s after the first one arrived."""
    from leadfactory.llm import providers

    monkeypatch.setenv("OLLAMA_RATE_LIMIT_RPM", "1")
    clock = FakeClock()
    client = client_for(clock)
    client.config.providers["openai"].enabled = False
    client.config.providers["anthropic"].enabled = False
    imported, load, complete = [], providers.load_litellm, providers.complete
    arrivals: list[float] = []

    def load_slowly():  # as in a fresh process: the first import takes seconds
        if not imported:
            imported.append(True)
            clock.now += 5
        return load()

    def arrive(arguments):
        arrivals.append(clock.now)
        return complete(arguments)

    async def aarrive(arguments):
        arrivals.append(clock.now)
        return await acomplete(arguments)

    acomplete = providers.acomplete
    monkeypatch.setattr(providers, "litellm_loaded", lambda: bool(imported))
    monkeypatch.setattr(providers, "load_litellm", load_slowly)
    monkeypatch.setattr(providers, "complete", arrive)
    monkeypatch.setattr(providers, "acomplete", aarrive)
    monkeypatch.setattr("asyncio.sleep", _fake_asleep(clock))
    for _ in range(2):
        if mode == "sync":
            client.chat_completion(USER)
        else:
            asyncio.run(client.achat_completion(USER))
        clock.now += 55.5  # the next call comes 55.5 s after this one ended
    assert imported and len(arrivals) == 2
    assert arrivals[1] - arrivals[0] >= 60  # rpm=1: never two arrivals in one window


def _fake_asleep(clock: FakeClock):
    async def asleep(seconds: float) -> None:
        clock.sleep(seconds)

    return asleep


def test_local_rpm_limit_skips_to_next_provider(sim_env, monkeypatch):
    monkeypatch.setenv("OLLAMA_RATE_LIMIT_RPM", "2")
    clock = FakeClock()
    client = client_for(clock)
    providers = [client.chat_completion(USER)["provider"] for _ in range(3)]
    assert providers == ["ollama", "ollama", "openai"]
    assert sim_env.request_count("ollama") == 2


def test_all_saturated_waits_then_raises_with_retry_after(sim_env, monkeypatch):
    monkeypatch.setenv("OLLAMA_RATE_LIMIT_RPM", "1")
    monkeypatch.setenv("LLM_RATE_LIMIT_MAX_WAIT", "5")
    clock = FakeClock()
    client = client_for(clock)
    client.config.providers["openai"].enabled = False
    client.config.providers["anthropic"].enabled = False
    client.chat_completion(USER)
    with pytest.raises(LLMRateLimitError) as caught:
        client.chat_completion(USER)  # the window frees in 60 s, more than we may wait
    assert caught.value.retry_after == pytest.approx(60, abs=0.01)
    assert clock.slept == []
    client.config.rate_limit_max_wait = 120
    assert client.chat_completion(USER)["provider"] == "ollama"
    assert clock.slept == [pytest.approx(60, abs=0.01)]


def test_tpm_counts_estimated_tokens(sim_env, monkeypatch):
    monkeypatch.setenv("OLLAMA_RATE_LIMIT_TPM", "150")
    clock = FakeClock()
    client = client_for(clock)
    # each request reserves its prompt + max_tokens=100, corrected to real usage afterwards
    assert client.chat_completion(USER, max_tokens=100)["provider"] == "ollama"
    assert client.chat_completion(USER, max_tokens=100)["provider"] == "ollama"
    used = client.get_provider_status()["ollama"]["tokens_in_window"]
    assert 0 < used < 100  # corrected to the reported usage
    too_big = client.chat_completion(USER, max_tokens=1000)  # can never fit in 150 TPM
    assert too_big["provider"] == "openai"
    assert too_big["attempts"][0]["reason"] == "too_large"


def test_refusing_provider_cools_down_and_is_skipped_without_network(sim_env, monkeypatch):
    monkeypatch.setenv("OLLAMA_MAX_RETRIES", "0")
    clock = FakeClock()
    client = client_for(clock, cooldown_failures=2, cooldown_seconds=30)
    sim_env.set_fault("ollama", Fault.REFUSE)
    for _ in range(2):
        response = client.chat_completion(USER)
        assert response["attempts"][0]["outcome"] == "error"
    cooled = client.chat_completion(USER)
    assert cooled["provider"] == "openai"
    assert cooled["attempts"][0]["outcome"] == "skipped"
    assert cooled["attempts"][0]["reason"] == "cooling_down"
    status = client.get_provider_status()["ollama"]
    assert status["health"] == "cooling_down" and not status["available"]
    assert status["cooling_down_until"] is not None
    # after the cooldown one probe goes through; success closes the breaker
    sim_env.clear_faults()
    clock.now += 31
    assert client.chat_completion(USER)["provider"] == "ollama"
    assert client.get_provider_status()["ollama"]["health"] == "healthy"
