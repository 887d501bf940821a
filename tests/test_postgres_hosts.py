"""Many hosts, one budget (issue 17, PostgreSQL half), through the client and the simulator.

Each "host" is a process (tests/postgres_host.py) with its own HOME and temp dirs
(conftest.child_environment): the hosts share nothing but the simulator and PostgreSQL.
Waits are bounded by deadlines; nothing here asserts how long anything took.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from leadfactory.llm import LLMClient, LLMConfig, LLMLedgerUnavailableError
from leadfactory.llm.ledger import Budget
from leadfactory.llm.ledger.postgres import PostgresLedger
from leadfactory.llm.simulator import Fault

from .conftest import SENTINEL_KEY, child_environment
from .test_postgres_ledger import free_port, totals_match_rows

ROOT = Path(__file__).resolve().parents[1]
DAILY_LIMIT = 0.03  # about a third of the 96 calls fit


def start_host(sim, url: str, home: Path, workers: int, calls: int, **env: str):
    environment = child_environment(home)
    environment.update(sim.env(), OPENAI_API_KEY=SENTINEL_KEY, ANTHROPIC_API_KEY=SENTINEL_KEY)
    environment.update(
        LLM_LEDGER_URL=url,
        LLM_DAILY_COST_LIMIT=str(DAILY_LIMIT),
        LLM_LOG_REQUESTS="false",
        OPENAI_RETRY_DELAY="0",
        ANTHROPIC_RETRY_DELAY="0",
        OPENAI_COST_PER_1K_TOKENS="0.03",  # a price of our own: about $0.001 a call
        ANTHROPIC_COST_PER_1K_TOKENS="0.03",
        PYTHONPATH=str(ROOT),
        **env,
    )
    return subprocess.Popen(
        [sys.executable, "-m", "tests.postgres_host", str(workers), str(calls)],
        cwd=home,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_four_hosts_of_eight_workers_share_one_daily_limit(sim, postgres_url, tmp_path):
    url = postgres_url
    hosts = [start_host(sim, url, tmp_path / f"host{n}", 8, 3) for n in range(4)]
    summaries = []
    for host in hosts:
        out, err = host.communicate(timeout=300)
        assert host.returncode == 0, err[-2000:]
        summaries.append(json.loads(out.splitlines()[-1]))
    answered = [rid for s in summaries for rid in s["answered"]]
    assert not [error for s in summaries for error in s["other"]]  # no deadlock, no 40001
    assert 0 < len(answered) < 96  # the limit was reached
    assert sum(len(s["refused"]) for s in summaries) == 96 - len(answered)
    assert [alert for s in summaries for alert in s["alerts"]] == ["day"]  # once, one host
    with PostgresLedger(url) as ledger:
        rows = ledger.rows()
        assert len(ledger.alerts()) == 1
    assert sum(row["cost_usd"] for row in rows) <= DAILY_LIMIT + 1e-12
    assert not [row for row in rows if row["outcome"] == "pending"]
    paid = {row["request_id"] for row in rows if row["outcome"] == "success"}
    assert paid == set(answered)  # every answered call has its row, and only those
    totals_match_rows(url)


def test_a_killed_host_stops_holding_budget_after_the_stale_period(sim, postgres_url, tmp_path):
    url = postgres_url
    stale_after = 3.0
    sim.set_fault("openai", Fault.DELAY, delay=120)  # calls hang: their reservations pend
    sim.set_fault("anthropic", Fault.DELAY, delay=120)
    host = start_host(sim, url, tmp_path / "doomed", 8, 1, LLM_LEDGER_STALE_AFTER=str(stale_after))
    budget = Budget(max_cost_per_request=1.0, daily_limit=DAILY_LIMIT, monthly_limit=None)
    with PostgresLedger(url, stale_after=stale_after) as ledger:
        try:
            pending = wait_for(lambda: len(ledger.rows()) == 8 and ledger.rows())
        finally:
            host.kill()  # SIGKILL: no settlement, no release
            host.wait(timeout=30)
        held = sum(row["reserved_usd"] for row in pending)
        assert ledger.spend() == pytest.approx(held)  # counted while they may be live
        big = DAILY_LIMIT - held / 2  # fits only once the dead host's hold is gone
        with pytest.raises(Exception, match="daily_cost_limit"):
            ledger.check(provider="openai", estimated_usd=big, budget=budget)
        wait_for(lambda: ledger.spend() == 0.0)
        reservation = ledger.reserve(
            request_id="after", provider="openai", model="m", estimated_usd=big, budget=budget
        )
        ledger.settle(reservation, outcome="success", cost_usd=big / 2)
        assert [row["outcome"] for row in ledger.rows()].count("pending") == 8  # kept as history
    totals_match_rows(url)


def test_paid_calls_are_refused_and_free_ones_served_when_postgresql_is_down(
    sim_env, monkeypatch, caplog
):
    monkeypatch.setenv("LLM_LEDGER_URL", f"postgresql://postgres@127.0.0.1:{free_port()}/test")
    config = LLMConfig(enable_caching=False)
    with LLMClient(config) as client:
        client.ledger._db.timeout = 0.5
        with pytest.raises(LLMLedgerUnavailableError, match="PostgreSQL ledger"):
            client.chat_completion([{"role": "user", "content": "paid"}], model="openai")
        response = client.chat_completion([{"role": "user", "content": "free"}])
    assert response["provider"] == "ollama"
    assert sim_env.request_count("openai") == 0 and sim_env.request_count("anthropic") == 0
    assert "is not written" in caplog.text


def wait_for(condition, deadline: float = 60.0):
    """``condition()``'s first truthy value, polled until ``deadline`` seconds pass."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"not reached within {deadline:g}s")
