"""Cancellation at any point settles or releases: 2,000 async calls under random timeouts.

Each call runs inside ``asyncio.wait_for`` with a random timeout, against a simulator
that answers after a short delay, so cancellations land while reserving, while the
request is on the wire and while settling. Afterwards no reservation is left pending,
and every request the provider received is charged (a cancelled one at its reservation,
marked estimated): providers bill what they were sent.
"""

from __future__ import annotations

import asyncio
import random

import pytest

from leadfactory.llm import LLMClient, LLMConfig, LLMError
from leadfactory.llm.ledger import LedgerWorker
from leadfactory.llm.simulator import Fault

USER = [{"role": "user", "content": "Name one prime number."}]
CALLS = 2_000
IN_FLIGHT = 20


@pytest.mark.slow
def test_random_wait_for_timeouts_leave_nothing_pending_and_charge_every_request(sim_env):
    sim_env.set_fault("openai", Fault.DELAY, delay=0.01)
    config = LLMConfig(enable_caching=False)
    config.cost_config.daily_cost_limit = None
    config.cost_config.monthly_cost_limit = None
    config.providers["openai"].max_retries = 0
    client = LLMClient(config)
    chance = random.Random(12)
    outcomes = {"answered": 0, "timed out": 0, "failed": 0}

    async def one(timeout: float, gate: asyncio.Semaphore) -> None:
        async with gate:
            try:
                await asyncio.wait_for(
                    client.achat_completion(USER, model="openai", max_tokens=5, cache=False),
                    timeout,
                )
                outcomes["answered"] += 1
            except TimeoutError:
                outcomes["timed out"] += 1
            except LLMError:
                outcomes["failed"] += 1

    async def main() -> None:
        gate = asyncio.Semaphore(IN_FLIGHT)
        timeouts = [chance.uniform(0.0, 0.3) for _ in range(CALLS)]
        await asyncio.gather(*(one(t, gate) for t in timeouts))

    asyncio.run(main())
    assert LedgerWorker.for_ledger(client.ledger).drain(30)
    rows = client.ledger.rows()
    assert outcomes["answered"] > 0 and outcomes["timed out"] > 0  # both kinds happened
    assert [r for r in rows if r["outcome"] == "pending"] == []
    charged = [r for r in rows if r["cost_usd"] > 0]
    assert len(charged) >= sim_env.request_count("openai") >= outcomes["answered"]
    successes = [r for r in rows if r["outcome"] == "success"]
    assert len(successes) >= outcomes["answered"]
    cancelled = [r for r in rows if r["error_class"] == "Cancelled"]
    assert all(r["estimated"] == 1 for r in cancelled if r["cost_usd"] > 0)
    assert client.ledger.spend() == pytest.approx(sum(r["cost_usd"] for r in rows))
