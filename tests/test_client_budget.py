"""Budgets through the client: per-request cap, daily/monthly limits, alerts, resets."""

from __future__ import annotations

import multiprocessing
import os
import sqlite3

import pytest

from leadfactory.llm import LLMClient, LLMConfig, LLMQuotaExceededError
from leadfactory.llm.simulator import Fault

USER = [{"role": "user", "content": "Write a tagline for a bakery."}]
PROTOCOLS = ("ollama", "openai", "anthropic")


@pytest.fixture(autouse=True)
def prices(monkeypatch):
    """Fixed prices, so the figures below hold whatever the default models cost:
    OpenAI's split ($0.03 in, $0.06 out per 1,000 tokens), Anthropic's blended ($0.015)."""
    monkeypatch.setenv("OPENAI_INPUT_COST_PER_1K_TOKENS", "0.03")
    monkeypatch.setenv("OPENAI_OUTPUT_COST_PER_1K_TOKENS", "0.06")
    monkeypatch.setenv("ANTHROPIC_COST_PER_1K_TOKENS", "0.015")


def paid_only(**settings) -> LLMConfig:
    config = LLMConfig(enable_caching=False, fallback_strategy="round_robin", **settings)
    config.providers["ollama"].enabled = False
    return config


def test_per_request_cap_skips_expensive_provider(sim_env, monkeypatch):
    monkeypatch.setenv("OPENAI_OUTPUT_COST_PER_1K_TOKENS", "10")  # $1 for 100 tokens: over the cap
    with LLMClient(paid_only()) as client:
        response = client.chat_completion(USER, max_tokens=100)
    assert response["provider"] == "anthropic"
    skipped = response["attempts"][0]
    assert skipped["provider"] == "openai" and skipped["outcome"] == "skipped"
    assert skipped["reason"] == "over_budget" and skipped["error"] == "LLMQuotaExceededError"
    assert sim_env.request_count("openai") == 0


def test_nothing_fits_raises_quota_error_without_calling(sim_env, monkeypatch):
    monkeypatch.setenv("LLM_MAX_COST_PER_REQUEST", "0.0001")
    with LLMClient(paid_only()) as client:
        with pytest.raises(LLMQuotaExceededError) as caught:
            client.chat_completion(USER, max_tokens=100)
        assert client.ledger.rows() == []
    error = caught.value
    assert error.metadata["limit"] == "max_cost_per_request"
    assert "max_cost_per_request" in str(error) and "exceeded by $" in str(error)
    assert error.metadata["over_by_usd"] > 0
    assert sum(sim_env.request_count(p) for p in PROTOCOLS) == 0


def test_daily_limit_switches_to_free_provider(sim_env, monkeypatch):
    monkeypatch.setenv("LLM_DAILY_COST_LIMIT", "0.0012")  # about four anthropic calls
    config = LLMConfig(enable_caching=False, fallback_strategy="quality_optimized")
    with LLMClient(config) as client:
        served = [client.chat_completion(USER, max_tokens=20)["provider"] for _ in range(8)]
        spent = client.ledger.spend(period="day")
        status = client.get_provider_status()
    assert served[0] == "anthropic" and served[-1] == "ollama"
    assert spent <= 0.0012
    assert status["ollama"]["available"] and not status["anthropic"]["available"]
    assert "daily_cost_limit" in status["anthropic"]["unavailable_reason"]


def test_status_checks_the_budget_at_the_models_price(sim_env, monkeypatch):
    monkeypatch.setenv("LLM_MAX_COST_PER_REQUEST", "0.05")
    with LLMClient(LLMConfig(enable_caching=False)) as client:
        status = client.get_provider_status()
    # default_max_tokens (1000) at OpenAI's output price, $6e-5 a token: $0.06
    assert not status["openai"]["available"]
    assert "max_cost_per_request" in status["openai"]["unavailable_reason"]
    # at Anthropic's blended $0.015 per 1,000 tokens: $0.015
    assert status["anthropic"]["available"]


def test_daily_limit_with_no_free_provider_raises(sim_env, monkeypatch):
    monkeypatch.setenv("LLM_DAILY_COST_LIMIT", "0.001")
    with (
        LLMClient(paid_only()) as client,
        pytest.raises(LLMQuotaExceededError, match="daily_cost_limit"),
    ):
        for _ in range(10):
            client.chat_completion(USER, max_tokens=20)


def test_failed_attempt_costs_nothing(sim_env):
    sim_env.set_fault("openai", Fault.SERVER_ERROR)
    with LLMClient(paid_only()) as client:
        response = client.chat_completion(USER, max_tokens=20)
        rows = client.ledger.rows()
    errors = [r for r in rows if r["outcome"] == "error"]
    assert errors and all(r["cost_usd"] == 0.0 and r["reserved_usd"] == 0 for r in errors)
    assert {r["error_class"] for r in errors} == {"LLMProviderError"}
    success = [r for r in rows if r["outcome"] == "success"]
    assert len(success) == 1 and success[0]["cost_usd"] == pytest.approx(response["cost"])


def test_alert_callback_fires_once(sim_env, monkeypatch):
    monkeypatch.setenv("LLM_DAILY_COST_LIMIT", "0.01")
    monkeypatch.setenv("LLM_BUDGET_ALERT_THRESHOLD", "0.1")
    alerts = []
    with LLMClient(paid_only(), on_budget_alert=alerts.append) as client:
        for _ in range(4):
            client.chat_completion(USER, max_tokens=20)
    assert [a.period for a in alerts] == ["day"]
    assert alerts[0].limit_usd == 0.01 and alerts[0].spent_usd >= 0.001


def test_reset_cost_tracking_frees_headroom_and_keeps_history(sim_env, monkeypatch):
    monkeypatch.setenv("LLM_DAILY_COST_LIMIT", "0.0006")  # one anthropic call fits
    with LLMClient(paid_only()) as client:
        client.chat_completion(USER, max_tokens=20)
        with pytest.raises(LLMQuotaExceededError):
            client.chat_completion(USER, max_tokens=20)
        before = len(client.ledger.rows())
        client.reset_cost_tracking()
        assert client.get_provider_status()["openai"]["daily_cost"] == 0.0
        client.chat_completion(USER, max_tokens=20)
        assert len(client.ledger.rows()) == before + 1


def test_cost_tracking_off_writes_nothing_but_keeps_the_cap(sim_env, monkeypatch, tmp_path):
    monkeypatch.setenv("LLM_COST_TRACKING", "false")
    monkeypatch.setenv("LLM_LEDGER_PATH", str(tmp_path / "off.db"))
    with LLMClient(paid_only()) as client:
        client.chat_completion(USER, max_tokens=20)
        assert client.get_provider_status()["openai"]["daily_cost"] == 0.0
        client.config.cost_config.max_cost_per_request = 0.00001
        with pytest.raises(LLMQuotaExceededError, match="max_cost_per_request"):
            client.chat_completion(USER, max_tokens=20)
    assert not (tmp_path / "off.db").exists()


def _worker(env: dict, calls: int, results) -> None:
    import threading

    os.environ.update(env)
    from leadfactory.llm import LLMClient, LLMConfig, LLMError

    config = LLMConfig(enable_caching=False)
    config.providers["ollama"].enabled = False
    client = LLMClient(config)
    outcome = {"ok": 0, "quota": 0, "other": []}
    lock = threading.Lock()

    def run() -> None:
        for i in range(calls):
            try:
                client.chat_completion(
                    [{"role": "user", "content": f"{os.getpid()} {i}"}], max_tokens=20
                )
                key = "ok"
            except LLMError as error:
                key = "quota" if "cost_limit" in str(error) else None
                if key is None:
                    with lock:
                        outcome["other"].append(repr(error))
                    continue
            with lock:
                outcome[key] += 1

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    results.put(outcome)


def test_four_processes_four_threads_never_overspend(sim_env, tmp_path):
    limit = 0.005  # about 17 of the 96 calls fit
    env = {
        k: v
        for k, v in os.environ.items()
        if k.startswith(("OPENAI", "ANTHROPIC", "OLLAMA", "LLM_"))
    }
    env.update(
        LLM_DAILY_COST_LIMIT=str(limit),
        LLM_LEDGER_PATH=str(tmp_path / "shared.db"),
        LLM_LOG_REQUESTS="false",
    )
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    workers = [context.Process(target=_worker, args=(env, 6, results)) for _ in range(4)]
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)
    assert all(not o["other"] for o in outcomes), [o["other"] for o in outcomes]
    succeeded = sum(o["ok"] for o in outcomes)
    assert 0 < succeeded < 96 and sum(o["quota"] for o in outcomes) == 96 - succeeded
    with sqlite3.connect(tmp_path / "shared.db") as conn:
        spent, rows = conn.execute(
            "select sum(cost_usd), count(*) from calls where outcome = 'success'"
        ).fetchone()
        pending = conn.execute("select count(*) from calls where outcome = 'pending'").fetchone()
    assert spent <= limit + 1e-9
    assert rows == succeeded and pending == (0,)


def test_async_alert_callback_fires_once_on_the_event_loop(sim_env, monkeypatch):
    import asyncio
    import threading

    monkeypatch.setenv("LLM_DAILY_COST_LIMIT", "0.01")
    monkeypatch.setenv("LLM_BUDGET_ALERT_THRESHOLD", "0.1")
    seen = []

    def on_alert(alert):
        seen.append((alert.period, threading.get_ident(), asyncio.get_running_loop()))

    async def main():
        with LLMClient(paid_only(), on_budget_alert=on_alert) as client:
            for _ in range(4):
                await client.achat_completion(USER, max_tokens=20, cache=False)
        return threading.get_ident(), asyncio.get_running_loop()

    thread, loop = asyncio.run(main())
    assert seen == [("day", thread, loop)]  # once, in the caller's thread and loop
