"""``leadfactory-llm metrics`` (issue 19): a Prometheus endpoint fed from the ledger.

The same run, counted by the in-process telemetry and by the command reading the
ledger afterwards, gives the same attempts, errors, tokens, dollars, latencies and
cache hits; rows are counted once, pending ones once settled; the endpoint serves.
"""

from __future__ import annotations

import subprocess
import sys
import urllib.request
from collections import Counter

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from leadfactory.llm import LLMClient, LLMConfig
from leadfactory.llm.cli import main
from leadfactory.llm.ledger import Budget, CostLedger
from leadfactory.llm.simulator import Fault
from leadfactory.llm.telemetry import Telemetry
from leadfactory.llm.telemetry.instruments import MetricObserver
from leadfactory.llm.telemetry.ledger_feed import LedgerFeed
from leadfactory.llm.telemetry.sinks import PrometheusSink

from .conftest import SENTINEL_KEY, child_environment

USER = [{"role": "user", "content": "What is the capital of France?"}]
COUNTED = (
    "leadfactory_llm_attempts_total",
    "leadfactory_llm_cost_usd_total",
    "leadfactory_llm_cache_hits_total",
    "gen_ai_client_token_usage_sum",
    "gen_ai_client_token_usage_count",
    "gen_ai_client_operation_duration_seconds_count",
    "gen_ai_client_operation_duration_seconds_sum",
)


def figures(families) -> dict[tuple, float]:
    """Counted samples by name and labels; skips left out (the ledger has no row for
    them), and the response model (the ledger keeps the model asked for)."""
    found: dict[tuple, float] = {}
    for family in families:
        for sample in family.samples:
            labels = dict(sample.labels)
            labels.pop("gen_ai_response_model", None)
            if sample.name not in COUNTED or sample.value == 0:
                continue
            if labels.get("leadfactory_llm_outcome") == "skipped":
                continue
            key = sample.name, tuple(sorted(labels.items()))
            found[key] = found.get(key, 0.0) + sample.value
    return found


def run_with_faults(sim, telemetry: Telemetry) -> LLMClient:
    config = LLMConfig(fallback_strategy="quality_optimized")
    del config.providers["ollama"]
    config.providers["openai"].priority = 10
    config.providers["openai"].max_retries = 1
    client = LLMClient(config, telemetry=telemetry)
    client.chat_completion(USER, max_tokens=30)
    sim.set_fault("openai", Fault.SERVER_ERROR, times=3)
    client.chat_completion([{"role": "user", "content": "Second question"}], max_tokens=30)
    client.chat_completion(USER, max_tokens=30)  # a cache hit
    return client


def test_the_command_counts_what_the_in_process_telemetry_counted(sim_env, capsys):
    registry = CollectorRegistry()
    client = run_with_faults(sim_env, Telemetry(prometheus=True, registry=registry))
    in_process = figures(registry.collect())
    client.close()

    assert main(["metrics", "--once"]) == 0
    exposition = capsys.readouterr().out
    from_ledger = figures(text_string_to_metric_families(exposition))
    assert set(from_ledger) == set(in_process)
    for key, value in in_process.items():
        assert from_ledger[key] == pytest.approx(value), key
    outcomes = Counter(
        dict(labels)["leadfactory_llm_outcome"]
        for name, labels in from_ledger
        if name == "leadfactory_llm_attempts_total"
    )
    assert set(outcomes) == {"success", "error", "cache_hit"}
    assert "leadfactory_llm_budget_spent_usd" in exposition
    assert "leadfactory_llm_provider_available{" not in exposition  # not shared: not known
    assert SENTINEL_KEY not in exposition


def test_rows_are_counted_once_and_pending_ones_once_settled(tmp_path):
    registry = CollectorRegistry()
    sink = PrometheusSink(registry)
    budget = Budget(max_cost_per_request=None, daily_limit=None, monthly_limit=None)
    with CostLedger(tmp_path / "ledger.db") as ledger:
        feed = LedgerFeed(ledger, MetricObserver(sink))
        done = ledger.reserve(
            request_id="a", provider="p", model="m", estimated_usd=1, budget=budget
        )
        ledger.settle(done, outcome="success", cost_usd=0.5, prompt_tokens=7, latency_ms=10)
        waiting = ledger.reserve(
            request_id="b", provider="p", model="m", estimated_usd=1, budget=budget
        )
        unsent = ledger.reserve(
            request_id="c", provider="p", model="m", estimated_usd=1, budget=budget
        )
        ledger.release(unsent)
        assert feed.read() == 1
        assert feed.read() == 0
        ledger.settle(waiting, outcome="error", error_class="LLMProviderError", latency_ms=5)
        assert feed.read() == 1
        assert feed.read() == 0

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    common = {
        "gen_ai_provider_name": "p",
        "gen_ai_request_model": "m",
        "leadfactory_llm_reason": "",
    }
    assert (
        value(
            "leadfactory_llm_attempts_total",
            **common,
            leadfactory_llm_outcome="success",
            error_type="",
        )
        == 1
    )
    assert (
        value(
            "leadfactory_llm_attempts_total",
            **common,
            leadfactory_llm_outcome="error",
            error_type="LLMProviderError",
        )
        == 1
    )
    assert (
        value("leadfactory_llm_cost_usd_total", gen_ai_provider_name="p", gen_ai_request_model="m")
        == 0.5
    )


def test_the_command_serves_the_endpoint_and_follows_the_ledger(sim_env, tmp_path):
    client = LLMClient(LLMConfig(enable_caching=False))
    client.chat_completion(USER, model="openai", max_tokens=20)
    env = child_environment(tmp_path / "home") | {"LLM_LEDGER_PATH": str(client.ledger.path)}
    command = [sys.executable, "-m", "leadfactory.llm.cli", "metrics", "--port", "0"]
    server = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    try:
        line = server.stderr.readline()
        assert line.startswith("serving http://127.0.0.1:"), line
        url = line.split()[1]

        def successes() -> float:
            text = urllib.request.urlopen(url, timeout=30).read().decode()
            return sum(
                sample.value
                for family in text_string_to_metric_families(text)
                for sample in family.samples
                if sample.name == "leadfactory_llm_attempts_total"
                and sample.labels["leadfactory_llm_outcome"] == "success"
            )

        assert successes() == 1
        client.chat_completion(USER, model="openai", max_tokens=20)
        assert successes() == 2
    finally:
        server.terminate()
        server.wait(timeout=30)
        client.close()


def test_help_says_what_it_serves(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["metrics", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert all(option in out for option in ("--port", "--host", "--once", "--ledger"))
    assert "examples:\n  leadfactory-llm metrics --port 9464" in out
