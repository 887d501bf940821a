"""The cache seen through the client: hits are free, copies, recorded, and single-flight."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import subprocess
import sys
import threading

import pytest

from leadfactory.llm import AllProvidersFailedError, LLMClient, LLMConfig, LLMError
from leadfactory.llm.cache import ResponseCache
from leadfactory.llm.cached_calls import CachedCalls, endpoint
from leadfactory.llm.config import ProviderConfig
from leadfactory.llm.flow import Request
from leadfactory.llm.simulator import Fault

from .fake_clock import FakeClock

USER = [{"role": "user", "content": "Name three French cheeses."}]
PROVIDERS = ("openai", "anthropic", "ollama")


def provider_calls(sim) -> int:
    """Requests the simulator received, all providers together."""
    return sum(sim.request_count(name) for name in PROVIDERS)


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
    original = first["choices"][0]["message"]["content"]
    first["choices"][0]["message"]["content"] = "changed by the caller of the miss"
    second = client.chat_completion(USER)
    assert second["cached"] is True
    second["choices"][0]["message"]["content"] = "changed by the caller of a hit"
    second["choices"].append({"index": 1})
    second["usage"]["total_tokens"] = -1
    third = client.chat_completion(USER)
    assert third["cached"] is True
    assert third["choices"][0]["message"]["content"] == original
    assert len(third["choices"]) == 1 and third["usage"]["total_tokens"] > 0


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
    assert provider_calls(sim_env) == 1


@pytest.mark.slow
def test_hit_after_the_process_that_asked_has_exited(sim_env, tmp_path):
    """Another Python process asks first (same environment, same cache file); this one
    is then answered from the file without calling a provider."""
    code = (
        "import json, sys; from leadfactory.llm import LLMClient;"
        "client = LLMClient(); answer = client.chat_completion(json.loads(sys.argv[1]));"
        "client.close(); print(answer['cached'])"
    )
    child = subprocess.run(
        [sys.executable, "-c", code, json.dumps(USER)],
        capture_output=True,
        text=True,
        timeout=90,
        check=True,
    )
    assert child.stdout.strip() == "False"
    assert provider_calls(sim_env) == 1
    with LLMClient() as client:
        again = client.chat_completion(USER)
    assert again["cached"] is True and again["cost"] == 0.0
    assert provider_calls(sim_env) == 1


def test_entries_expire_after_the_ttl(sim_env, tmp_path):
    clock = FakeClock(1_700_000_000.0)  # epoch seconds, as the cache stores them
    cache = ResponseCache(tmp_path / "ttl.db", ttl=60, clock=clock)
    with LLMClient(cache=cache) as client:
        assert client.chat_completion(USER)["cached"] is False
        clock.advance(59)
        assert client.chat_completion(USER)["cached"] is True
        clock.advance(1)
        assert client.chat_completion(USER)["cached"] is False
        assert client.chat_completion(USER)["cached"] is True
    assert provider_calls(sim_env) == 2


def test_the_least_recently_used_entries_are_evicted_at_the_bound(sim_env, tmp_path):
    clock = FakeClock(1_700_000_000.0)  # epoch seconds, as the cache stores them
    cache = ResponseCache(tmp_path / "small.db", max_entries=10, memory_entries=0, clock=clock)

    def ask(i: int) -> dict:
        clock.advance(1)
        return client.chat_completion([{"role": "user", "content": f"Question {i}"}])

    with LLMClient(cache=cache) as client:
        for i in range(10):
            ask(i)
        assert ask(0)["cached"] is True  # question 0 is now the most recently used
        ask(10)  # the 11th entry: the least recently used go, down to 9
        assert cache.stats()["entries"] == 9 and cache.stats()["evictions"] == 2
        assert provider_calls(sim_env) == 11
        assert [ask(i)["cached"] for i in (0, 1, 2)] == [True, False, False]


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
    assert provider_calls(sim_env) == 1
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


# -- issue 12: what is served, and what is stored ----------------------------------------


def test_an_answer_is_served_only_while_its_endpoint_is_configured(sim_env, tmp_path):
    """The offline walkthrough's simulator answers must not outlive the simulator."""
    path = tmp_path / "shared-cache.db"

    def ask(**provider_changes) -> dict:
        config = LLMConfig()
        for name, value in provider_changes.items():
            setattr(config.providers["ollama"], name, value)
        with LLMClient(config, cache=ResponseCache(path)) as client:
            return client.chat_completion(USER, model="ollama", max_tokens=5)

    first = ask()
    assert first["cached"] is False
    assert ask()["cached"] is True  # same endpoint: served
    with pytest.raises(LLMError):  # the simulator's answer is not the real Ollama's
        ask(base_url="http://127.0.0.1:9")
    assert ask(default_model="llama3.1:70b")["cached"] is False  # another model
    assert ask(default_model="llama3.1:70b")["cached"] is True
    # One entry per request: it is now the other model's, so the first model asks again.
    assert ask()["cached"] is False
    assert sim_env.request_count("ollama") == 3


def test_an_entry_written_before_endpoints_were_kept_is_not_served(sim_env, tmp_path):
    path = tmp_path / "old-cache.db"
    with LLMClient(cache=ResponseCache(path)) as client:
        client.chat_completion(USER, model="ollama", max_tokens=5)
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("UPDATE responses SET endpoint = NULL")  # as a file from before
    with LLMClient(cache=ResponseCache(path)) as client:
        assert client.chat_completion(USER, model="ollama", max_tokens=5)["cached"] is False


def test_the_endpoint_holds_no_secret():
    provider = ProviderConfig(
        name="custom",
        base_url="https://user:pa55word@llm.example.com:8443/v1/?api_key=sk-query#frag",
        default_model="m",
        api_key="sk-secret",
    )
    described = endpoint(provider)
    assert described == "custom m https://llm.example.com:8443/v1"
    assert endpoint(provider, "other") == "custom other https://llm.example.com:8443/v1"
    assert endpoint(None) is None


def test_an_answer_with_no_choices_is_never_stored(tmp_path):
    """A provider that answers ``choices: []`` (the flow makes that a failure) is never
    cached, even if such an answer reached the cache."""
    cache = ResponseCache(tmp_path / "c.db")
    calls = CachedCalls(lambda: cache, LLMConfig())
    request = Request("r1", [dict(message) for message in USER], {"max_tokens": 5}, 5)
    empty = {"id": "x", "provider": "openai", "model": "gpt-4", "choices": [], "usage": {}}
    assert calls.complete(request, lambda _: dict(empty), lambda answer: answer[0]) == empty
    assert cache.get(calls.key(request)) is None and cache.stats()["entries"] == 0
    for no_answer in ({"choices": []}, {"choices": None}):
        with pytest.raises(ValueError, match="no choices"):
            cache.set("k", no_answer)
    cache.close()
