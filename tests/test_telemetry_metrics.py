"""Metrics (issue 19): after a scripted run with faults, the Prometheus registry says
what the ledger says (attempts, errors, tokens, dollars, latencies, cache hits), and the
OpenTelemetry instruments carry the GenAI conventions' names and bucket boundaries.

Real HTTP against the simulator; a fresh CollectorRegistry per test.
"""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict

import pytest
from prometheus_client import CollectorRegistry

from leadfactory.llm import AllProvidersFailedError, LLMClient, LLMConfig, LLMQuotaExceededError
from leadfactory.llm.simulator import Fault
from leadfactory.llm.telemetry import Telemetry
from leadfactory.llm.telemetry.instruments import DURATION_BUCKETS, TOKEN_BUCKETS

USER = [{"role": "user", "content": "What is the capital of France?"}]


def ask(number: int) -> list[dict]:
    return [{"role": "user", "content": f"Question {number}: what is {number} + {number}?"}]


def make_client(telemetry: Telemetry, **settings) -> LLMClient:
    config = LLMConfig(fallback_strategy="quality_optimized", **settings)
    del config.providers["ollama"]
    config.providers["openai"].priority = 10
    config.providers["openai"].max_retries = 1
    config.providers["openai"].timeout = 0.5
    config.providers["anthropic"].max_retries = 0
    return LLMClient(config, telemetry=telemetry)


def samples(registry: CollectorRegistry, name: str, **match: str) -> list:
    return [
        sample
        for family in registry.collect()
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in match.items())
    ]


def total(registry: CollectorRegistry, name: str, **match: str) -> float:
    return sum(sample.value for sample in samples(registry, name, **match))


def scripted_run(sim, client: LLMClient) -> tuple[list[dict], int]:
    """Answers, fallbacks, retries, a timeout charged its reservation, cache hits, sync
    and async; returns the responses and how many calls were refused by the budget."""
    responses = [client.chat_completion(USER, max_tokens=30)]  # openai answers
    sim.set_fault("openai", Fault.SERVER_ERROR, times=1)
    responses.append(client.chat_completion(ask(1), max_tokens=30))  # a retry, then answered
    sim.set_fault("openai", Fault.SERVER_ERROR, times=2)
    responses.append(client.chat_completion(ask(2), max_tokens=30))  # falls back
    sim.set_fault("openai", Fault.HANG, times=1)
    responses.append(client.chat_completion(ask(3), max_tokens=30))  # charged, retried
    responses.append(client.chat_completion(USER, max_tokens=30))  # a cache hit

    async def concurrently() -> list[dict]:
        return await asyncio.gather(
            *(client.achat_completion(ask(n), max_tokens=30) for n in range(10, 14)),
            client.achat_completion(USER, max_tokens=30),  # a cache hit
        )

    sim.set_fault("openai", Fault.UNAVAILABLE, times=2)
    responses += asyncio.run(concurrently())
    client.config.cost_config.max_cost_per_request = 1e-9
    with pytest.raises(LLMQuotaExceededError):
        client.chat_completion(ask(99), max_tokens=30)
    client.config.cost_config.max_cost_per_request = 1.0
    return responses, 1


def test_the_registry_says_what_the_ledger_says(sim_env, monkeypatch):
    registry = CollectorRegistry()
    client = make_client(Telemetry(prometheus=True, registry=registry))
    responses, refused_calls = scripted_run(sim_env, client)
    rows = client.ledger.rows()
    assert {row["outcome"] for row in rows} == {"success", "error", "cache_hit"}

    # attempts by provider, model and outcome; errors by class
    by_outcome = Counter((r["provider"], r["model"], r["outcome"]) for r in rows)
    for (provider, model, outcome), count in by_outcome.items():
        labels = {"gen_ai_provider_name": provider, "gen_ai_request_model": model}
        assert (
            total(
                registry,
                "leadfactory_llm_attempts_total",
                **labels,
                leadfactory_llm_outcome=outcome,
            )
            == count
        )
    errors = Counter(r["error_class"] for r in rows if r["outcome"] == "error")
    assert set(errors) == {"LLMProviderError", "LLMTimeoutError"}
    for error_class, count in errors.items():
        assert total(registry, "leadfactory_llm_attempts_total", error_type=error_class) == count
    called = [r for r in rows if r["outcome"] != "cache_hit"]
    assert total(registry, "leadfactory_llm_attempts_total") == len(rows)

    # dollars, tokens and latencies per provider and model
    money: dict[tuple, float] = defaultdict(float)
    tokens: dict[tuple, int] = defaultdict(int)
    latency: dict[tuple, list] = defaultdict(list)
    for row in called:
        key = (row["provider"], row["model"])
        money[key] += row["cost_usd"]
        tokens[key + ("input",)] += row["prompt_tokens"]
        tokens[key + ("output",)] += row["completion_tokens"]
        latency[key].append(row["latency_ms"] / 1000.0)
    assert any(r["outcome"] == "error" and r["cost_usd"] > 0 for r in called)  # the timeout
    for (provider, model), dollars in money.items():
        labels = {"gen_ai_provider_name": provider, "gen_ai_request_model": model}
        assert total(registry, "leadfactory_llm_cost_usd_total", **labels) == pytest.approx(dollars)
        durations = "gen_ai_client_operation_duration_seconds"
        assert total(registry, f"{durations}_count", **labels) == len(latency[provider, model])
        assert total(registry, f"{durations}_sum", **labels) == pytest.approx(
            sum(latency[provider, model])
        )
    for (provider, model, kind), count in tokens.items():
        labels = {"gen_ai_provider_name": provider, "gen_ai_request_model": model}
        usage = total(registry, "gen_ai_client_token_usage_sum", **labels, gen_ai_token_type=kind)
        assert usage == count
    assert total(registry, "leadfactory_llm_cost_usd_total") == pytest.approx(
        sum(r["cost_usd"] for r in rows)
    )

    # cache hits, calls, fallbacks, budget refusals
    hits = [r for r in rows if r["outcome"] == "cache_hit"]
    assert len(hits) == 2
    assert total(registry, "leadfactory_llm_cache_hits_total") == len(hits)
    calls = len({r["request_id"] for r in rows}) + refused_calls
    assert total(registry, "leadfactory_llm_request_duration_seconds_count") == calls
    assert (
        total(
            registry,
            "leadfactory_llm_request_duration_seconds_count",
            leadfactory_llm_outcome="error",
        )
        == refused_calls
    )
    fallbacks = sum(
        1
        for response in responses
        for before, entry in zip(response["attempts"], response["attempts"][1:], strict=False)
        if entry["provider"] != before["provider"]
    )
    assert fallbacks >= 1
    assert total(registry, "leadfactory_llm_fallbacks_total") == fallbacks
    assert total(registry, "leadfactory_llm_budget_refusals_total") == 2  # both providers

    # gauges, read at the scrape
    spent = client.ledger.spend(period="day")
    assert total(
        registry, "leadfactory_llm_budget_spent_usd", leadfactory_llm_budget_period="day"
    ) == pytest.approx(spent)
    assert (
        total(registry, "leadfactory_llm_budget_limit_usd", leadfactory_llm_budget_period="month")
        == 1000.0
    )
    assert (
        total(registry, "leadfactory_llm_provider_available", gen_ai_provider_name="anthropic")
        == 1.0
    )


def test_a_rate_limit_pause_and_a_cooldown_show_in_the_gauges(sim_env):
    registry = CollectorRegistry()
    client = make_client(Telemetry(prometheus=True, registry=registry), cooldown_failures=1)
    sim_env.set_fault("openai", Fault.RATE_LIMIT, retry_after=30, times=1)
    sim_env.set_fault("anthropic", Fault.SERVER_ERROR, times=1)
    with pytest.raises(AllProvidersFailedError):  # openai pauses, anthropic cools down
        client.chat_completion(USER, max_tokens=20, cache=False)
    pause = total(registry, "leadfactory_llm_provider_pause_seconds", gen_ai_provider_name="openai")
    cooldown = total(
        registry, "leadfactory_llm_provider_cooldown_seconds", gen_ai_provider_name="anthropic"
    )
    assert 0 < pause <= 30 and cooldown > 0
    for name in ("openai", "anthropic"):
        assert total(registry, "leadfactory_llm_provider_available", gen_ai_provider_name=name) == 0


def test_the_opentelemetry_instruments_follow_the_genai_conventions(sim_env):
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    client = make_client(Telemetry(metrics=True, meter_provider=provider))
    sim_env.set_fault("openai", Fault.SERVER_ERROR, times=2)
    response = client.chat_completion(USER, max_tokens=30, cache=False)
    metrics = {
        metric.name: metric
        for resource in reader.get_metrics_data().resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
    }
    duration = metrics["gen_ai.client.operation.duration"]
    assert duration.unit == "s"
    points = list(duration.data.data_points)
    assert tuple(points[0].explicit_bounds) == DURATION_BUCKETS
    assert sum(p.count for p in points) == 3  # two failures on openai, one answer
    failed = [p for p in points if p.attributes.get("error.type") == "LLMProviderError"]
    assert failed and failed[0].attributes["gen_ai.provider.name"] == "openai"
    usage = metrics["gen_ai.client.token.usage"]
    assert usage.unit == "{token}"
    tokens = {
        p.attributes["gen_ai.token.type"]: p
        for p in usage.data.data_points
        if p.attributes["gen_ai.provider.name"] == "anthropic"
    }
    assert tuple(tokens["input"].explicit_bounds) == TOKEN_BUCKETS
    assert tokens["input"].sum == response["usage"]["prompt_tokens"]
    assert tokens["output"].sum == response["usage"]["completion_tokens"]
    assert metrics["leadfactory.llm.fallbacks"].data.data_points[0].value == 1
    provider.shutdown()
