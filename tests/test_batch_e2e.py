"""Issue 18's acceptance runs, through the simulator: 1,000 items with intermittent
faults, a SIGKILL half way and a rerun that pays nothing twice, and a budget stop.

The simulator records each request's body, so requests are counted per item by the
item's prompt (each item's prompt names it). Retry delays are 0, as in the other
end-to-end tests, so the runs take seconds, not minutes.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter

import pytest

from leadfactory.llm import LLMClient, LLMConfig, LLMError, LLMQuotaExceededError
from leadfactory.llm.batch import LLMBatchNotRunError

# About 25 s of CPU in all; the timeout leaves room for a machine shared by many jobs.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def prompt(i: int) -> str:
    return f"Describe lead {i} in one sentence."


def requests_per_prompt(sim, provider: str) -> Counter:
    """How many generation requests reached ``provider`` for each prompt."""
    return Counter(
        r["json"]["messages"][-1]["content"]
        for r in sim.requests(provider)
        if isinstance(r["json"], dict) and r["json"].get("messages")
    )


def two_paid_providers() -> LLMConfig:
    """OpenAI first, Anthropic behind it, no free provider, no cache."""
    config = LLMConfig(enable_caching=False, fallback_strategy="quality_optimized")
    del config.providers["ollama"]
    config.providers["openai"].priority = 10
    for provider in config.providers.values():  # a loaded machine is slow, never a fault
        provider.timeout = 60.0
    return config


def test_a_thousand_items_with_intermittent_faults(sim_env):
    sim_env.set_fault_cycle("openai", ["ok", "rate_limit", "ok", "500", "ok"], retry_after=0)
    requests = [{"id": f"lead-{i}", "prompt": prompt(i), "max_tokens": 20} for i in range(1000)]
    with LLMClient(two_paid_providers()) as client:
        results = client.map(requests, concurrency=20, progress=False)
        rows = client.ledger.rows()
    assert len(results) == 1000
    assert [item.id for item in results.items] == [f"lead-{i}" for i in range(1000)]
    for i, result in enumerate(results):
        if isinstance(result, LLMError):  # allowed, but each item ends one way or the other
            continue
        assert result["choices"][0]["message"]["content"].endswith(prompt(i))
    answered = [r for r in results if not isinstance(r, LLMError)]
    assert len(answered) >= 990  # a fault on every attempt of an item is possible, rare
    assert results.counts()["not_run"] == 0 and results.stopped is None
    faults = sum(1 for r in sim_env.requests("openai") if r["json"]) - len(
        [r for r in answered if r["provider"] == "openai"]
    )
    assert faults > 100  # the faults did happen
    # Ledger rows match the responses: one charged success row per answer, same cost.
    successes = {r["request_id"]: r["cost_usd"] for r in rows if r["outcome"] == "success"}
    assert successes == pytest.approx({r["request_id"]: r["cost"] for r in answered})
    assert all(r["cost_usd"] == 0 for r in rows if r["outcome"] == "error")
    assert sum(successes.values()) == pytest.approx(results.spent)


def run_cli(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "leadfactory.llm.cli", "batch", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def stored_ids(ledger_path) -> set[str]:
    try:
        with sqlite3.connect(f"file:{ledger_path}?mode=ro", uri=True, timeout=5) as db:
            return {row[0] for row in db.execute("SELECT item_id FROM batch_items")}
    except sqlite3.OperationalError:  # not created yet
        return set()


def test_sigkill_half_way_then_rerun_pays_no_answered_item_twice(sim_env, tmp_path, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_ENABLED", "false")
    monkeypatch.setenv("OPENAI_TIMEOUT", "60")  # a loaded machine is slow, never a fault
    monkeypatch.setenv("OLLAMA_ENABLED", "false")
    monkeypatch.setenv("LLM_ENABLE_CACHING", "false")  # only the run table may resume
    ledger = tmp_path / "ledger.db"
    monkeypatch.setenv("LLM_LEDGER_PATH", str(ledger))
    source, out = tmp_path / "leads.jsonl", tmp_path / "answers.jsonl"
    lines = [
        json.dumps({"id": f"lead-{i}", "prompt": prompt(i), "max_tokens": 20}) for i in range(1000)
    ]
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    args = (str(source), "--out", str(out), "--concurrency", "20")

    first = run_cli(*args)
    deadline = time.monotonic() + 120
    while len(stored_ids(ledger)) < 500 and first.poll() is None:
        assert time.monotonic() < deadline, "the first run made no progress"
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    assert first.returncode == -signal.SIGKILL, "the run ended before the kill"
    answered_before = stored_ids(ledger)
    assert 500 <= len(answered_before) < 1000
    before = requests_per_prompt(sim_env, "openai")
    assert not out.exists()  # killed: nothing written yet

    second = run_cli(*args)
    _, err = second.communicate(timeout=180)
    assert second.returncode == 0, err
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in records] == [f"lead-{i}" for i in range(1000)]
    assert all(r["error"] is None and r["content"] for r in records)
    resumed = {r["id"] for r in records if r["status"] == "resumed"}
    assert resumed == answered_before
    after = requests_per_prompt(sim_env, "openai")
    for i in range(1000):
        if f"lead-{i}" in answered_before:  # answered before the kill: not asked again
            assert after[prompt(i)] == before[prompt(i)] == 1
        else:  # asked (again, if it was in flight at the kill) and answered once more
            assert after[prompt(i)] == before[prompt(i)] + 1
    assert f"{len(answered_before)} from an earlier run" in err


def test_a_budget_stops_the_batch_and_the_rest_is_not_run(sim_env, monkeypatch):
    monkeypatch.setenv("OPENAI_TIMEOUT", "60")  # a loaded machine is slow, never a fault
    config = LLMConfig(enable_caching=False)
    for name in ("anthropic", "ollama"):
        del config.providers[name]
    with LLMClient(config) as probe:  # one item's price, at today's spend
        one = probe.chat_completion([{"role": "user", "content": prompt(999)}], max_tokens=20)
    limit = one["cost"] * 101  # the probe's call counts too: about 100 more fit
    monkeypatch.setenv("LLM_DAILY_COST_LIMIT", repr(limit))
    config = LLMConfig(enable_caching=False)
    for name in ("anthropic", "ollama"):
        del config.providers[name]
    requests = [{"id": i, "prompt": prompt(i), "max_tokens": 20} for i in range(300)]
    with LLMClient(config) as client:
        results = client.map(requests, concurrency=10, progress=False)
        spent = client.ledger.spend(period="day")
    counts = results.counts()
    assert 80 <= counts["answered"] <= 100
    assert counts["failed"] == 0 and counts["answered"] + counts["not_run"] == 300
    assert results.stopped.startswith("budget: daily_cost_limit")
    for item in results.items:
        if item.status == "not_run":
            assert isinstance(item.error, LLMBatchNotRunError | LLMQuotaExceededError)
            assert "daily_cost_limit" in str(item.error)
    never_started = [i for i in results.items if isinstance(i.error, LLMBatchNotRunError)]
    assert never_started and never_started[0].error.metadata["stop"] == "budget"
    assert spent <= limit
    assert sim_env.request_count("openai") == counts["answered"] + 1  # + the probe
