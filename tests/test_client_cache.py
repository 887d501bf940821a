"""The cache seen through the client: hits are free, copies, recorded, and single-flight."""

from __future__ import annotations

import threading

import pytest

from leadfactory.llm import AllProvidersFailedError, LLMClient, LLMConfig
from leadfactory.llm.simulator import Fault

USER = [{"role": "user", "content": "Name three French cheeses."}]


@pytest.fixture
def client(sim_env):
    config = LLMConfig()
    config.providers["ollama"].enabled = False  # paid providers, so hits have savings
    with LLMClient(config) as client:
        yield client


def test_hit_is_free_and_keeps_provider_and_usage(client, sim_env):
    first = client.chat_completion(USER, max_tokens=30)
    second = client.chat_completion(USER, max_tokens=30)
    assert first["cached"] is False and second["cached"] is True
    assert second["cost"] == 0.0 and second["saved_cost"] == pytest.approx(first["cost"])
    assert second["provider"] == first["provider"] and second["usage"] == first["usage"]
    assert second["choices"] == first["choices"]
    assert second["attempts"][0]["outcome"] == "cache_hit"
    assert sim_env.request_count(first["provider"]) == 1
    rows = client.ledger.rows()
    hits = [r for r in rows if r["outcome"] == "cache_hit"]
    assert len(hits) == 1 and hits[0]["cost_usd"] == 0.0
    assert hits[0]["saved_usd"] == pytest.approx(first["cost"]) and hits[0]["cached"] == 1


def test_different_parameters_miss(client, sim_env):
    client.chat_completion(USER, max_tokens=30, temperature=0.2)
    assert client.chat_completion(USER, max_tokens=30, temperature=0.20)["cached"] is True
    assert client.chat_completion(USER, max_tokens=30, temperature=0.3)["cached"] is False
    assert client.chat_completion(USER, max_tokens=31, temperature=0.2)["cached"] is False
    assert client.chat_completion(USER, model="openai", max_tokens=30)["cached"] is False


def test_cache_false_bypasses_and_clear_cache_empties(client, sim_env):
    client.chat_completion(USER)
    assert client.chat_completion(USER, cache=False)["cached"] is False
    assert client.clear_cache() >= 1
    assert client.chat_completion(USER)["cached"] is False


def test_caching_disabled_by_configuration(sim_env, monkeypatch):
    monkeypatch.setenv("LLM_ENABLE_CACHING", "false")
    with LLMClient() as client:
        client.chat_completion(USER)
        assert client.chat_completion(USER)["cached"] is False


def test_mutating_a_response_does_not_change_the_cache(client):
    first = client.chat_completion(USER)
    first["choices"][0]["message"]["content"] = "changed"
    second = client.chat_completion(USER)
    second["usage"]["total_tokens"] = -1
    third = client.chat_completion(USER)
    assert third["choices"][0]["message"]["content"] != "changed"
    assert third["usage"]["total_tokens"] > 0


def test_failures_are_not_cached(client, sim_env):
    for name in ("openai", "anthropic"):
        sim_env.set_fault(name, Fault.UNAUTHORIZED)
    with pytest.raises(AllProvidersFailedError):
        client.chat_completion(USER)
    sim_env.clear_faults()
    assert client.chat_completion(USER)["cached"] is False


def test_hit_survives_a_restart(sim_env):
    with LLMClient() as first:
        answer = first.chat_completion(USER)
    with LLMClient() as second:
        again = second.chat_completion(USER)
    assert again["cached"] is True and again["choices"] == answer["choices"]


def test_twenty_threads_make_one_call(client, sim_env):
    sim_env.set_fault("anthropic", Fault.DELAY, delay=0.3)
    results, barrier = [], threading.Barrier(20)

    def ask():
        barrier.wait()
        results.append(client.chat_completion(USER))

    threads = [threading.Thread(target=ask) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 20
    assert sim_env.request_count("anthropic") == 1
    assert sum(not r["cached"] for r in results) == 1
    assert len({id(r) for r in results}) == 20  # independent copies


def test_hits_do_not_use_budget_or_rate_limit(sim_env, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_RATE_LIMIT_RPM", "1")
    monkeypatch.setenv("OPENAI_ENABLED", "false")
    config = LLMConfig()
    config.providers["ollama"].enabled = False
    with LLMClient(config) as client:
        first = client.chat_completion(USER)
        for _ in range(5):
            assert client.chat_completion(USER)["cached"] is True
        status = client.get_provider_status()["anthropic"]
        assert status["requests_in_window"] == 1
        assert status["daily_cost"] == pytest.approx(first["cost"])
