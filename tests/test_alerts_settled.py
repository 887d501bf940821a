"""Budget alerts measure settled spend, refusals count reservations: through the client
and the simulator, with many calls in flight at once."""

from __future__ import annotations

import asyncio
import sqlite3

from leadfactory.llm import LLMClient, LLMConfig, LLMQuotaExceededError
from leadfactory.llm.simulator import Fault

LIMIT = 0.025  # USD a day; 20 reservations of about $0.00115 fit, their answers cost less
THRESHOLD = 0.8


def settled_spend(path) -> float:
    with sqlite3.connect(path) as conn:
        (spent,) = conn.execute(
            "SELECT coalesce(sum(cost_usd), 0) FROM calls WHERE outcome != 'pending'"
        ).fetchone()
    return spent


def attempt_rows(path) -> int:
    with sqlite3.connect(path) as conn:
        (rows,) = conn.execute(
            "SELECT count(*) FROM calls WHERE outcome IN ('success', 'error')"
        ).fetchone()
    return rows


async def wave(client: LLMClient, size: int) -> list:
    calls = [
        client.achat_completion(
            [{"role": "user", "content": f"Write tagline {n} for a bakery."}],
            max_tokens=100,
            cache=False,
        )
        for n in range(size)
    ]
    return await asyncio.gather(*calls, return_exceptions=True)


def test_twenty_in_flight_alert_on_settled_spend_and_never_pass_the_limit(
    sim_env, monkeypatch, tmp_path
):
    ledger_path = tmp_path / "ledger.db"
    monkeypatch.setenv("LLM_LEDGER_PATH", str(ledger_path))
    monkeypatch.setenv("OPENAI_COST_PER_1K_TOKENS", "0.01")  # $1e-5 a token, in and out
    monkeypatch.setenv("LLM_DAILY_COST_LIMIT", str(LIMIT))
    monkeypatch.setenv("LLM_BUDGET_ALERT_THRESHOLD", str(THRESHOLD))
    monkeypatch.setenv("LLM_LOG_REQUESTS", "false")
    sim_env.set_fault("openai", Fault.DELAY, delay=0.3)  # every call of a wave is in flight
    config = LLMConfig(enable_caching=False)
    for name in ("ollama", "anthropic"):
        config.providers[name].enabled = False
    heard: list[tuple] = []

    def on_alert(alert) -> None:  # what the ledger holds when the alert is sent
        heard.append((alert, settled_spend(ledger_path)))

    async def main() -> list[list]:
        with LLMClient(config, on_budget_alert=on_alert) as client:
            waves = [await wave(client, 20)]
            assert heard == []  # the 20 reservations passed 80 % of the limit; spend did not
            while any(isinstance(r, dict) for r in waves[-1]) and len(waves) < 40:
                waves.append(await wave(client, 20))  # until the limit admits no call
            return waves

    waves = asyncio.run(main())
    first = waves[0]
    assert all(isinstance(r, dict) for r in first), first
    costs = [r["cost"] for w in waves for r in w if isinstance(r, dict)]
    # every request the simulator saw is an attempt row (a loaded machine may time one
    # out and retry it); a refused call is neither
    assert sim_env.request_count("openai") == attempt_rows(ledger_path) >= len(costs)
    errors = [r for w in waves for r in w if not isinstance(r, dict)]
    assert errors and all(isinstance(e, LLMQuotaExceededError) for e in errors), errors
    assert sum(costs) <= LIMIT + 1e-12  # refusals counted the reservations
    assert sum(costs) - 1e-9 <= settled_spend(ledger_path) <= LIMIT + 1e-12

    threshold_usd = THRESHOLD * LIMIT
    assert sum(costs) >= threshold_usd  # refused only near the limit: the alert is due
    (alert, spent_then), *others = heard
    assert others == []  # once a day
    assert alert.period == "day" and alert.limit_usd == LIMIT
    assert alert.spent_usd <= spent_then + 1e-9  # settled spend (later calls may add to it)
    assert threshold_usd <= alert.spent_usd < threshold_usd + max(costs)  # the crossing call
    assert alert.reserved_usd >= 0
