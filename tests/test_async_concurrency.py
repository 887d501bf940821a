"""End-to-end over real HTTP: what only the async path of ``achat_completion`` can get
wrong. Concurrency on one event loop, sleeps that must be ``asyncio.sleep``, a hung
provider that must not block other tasks, cancellation, the cache's single flight and
budgets. Each test drives its coroutine with ``asyncio.run`` (no pytest-asyncio); the
fault matrix, per wire protocol, is in tests/test_async_e2e.py.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from leadfactory.llm import (
    AllProvidersFailedError,
    LLMClient,
    LLMConfig,
    LLMQuotaExceededError,
    LLMTimeoutError,
)
from leadfactory.llm.ledger import LedgerWorker
from leadfactory.llm.simulator import Fault

from .async_calls import achat
from .async_calls import litellm_loaded as litellm_loaded  # an autouse fixture
from .conftest import list_cost
from .test_client_e2e import PROTOCOLS, USER, make_client


def test_fifty_concurrent_calls_all_succeed(sim_env):
    client = make_client("openai", "ollama")
    # make_client's 0.5 s is for its failing provider: fifty requests built and sent at
    # once on one loop can take that long on a busy machine (a CI run timed 42 of them
    # out at 0.65-0.8 s), and this test is about concurrency, not timeouts
    client.config.providers["openai"].timeout = 30

    async def main() -> list[dict]:
        calls = [
            client.achat_completion(
                [{"role": "user", "content": f"question {i}"}], max_tokens=20, cache=False
            )
            for i in range(50)
        ]
        return await asyncio.gather(*calls)

    responses = asyncio.run(main())
    assert [r["provider"] for r in responses] == ["openai"] * 50
    for i, response in enumerate(responses):  # each answer belongs to its own question
        assert response["choices"][0]["message"]["content"].endswith(f"question {i}")
    assert len({r["request_id"] for r in responses}) == 50
    assert sim_env.request_count("openai") == 50 and sim_env.request_count("ollama") == 0
    rows = client.ledger.rows()
    assert len(rows) == 50 and {r["outcome"] for r in rows} == {"success"}
    assert sum(r["cost_usd"] for r in rows) == pytest.approx(sum(r["cost"] for r in responses))


def test_hung_provider_does_not_block_other_tasks(sim_env):
    sim_env.set_fault("openai", Fault.HANG)
    client = make_client("openai", "ollama")
    client.config.providers["openai"].max_retries = 0
    achat(client, USER, model="ollama", max_tokens=5, cache=False)  # warm the ollama route

    async def timed(coroutine) -> tuple[float, object]:
        try:
            result = await coroutine
        except Exception as error:  # the hung call's timeout
            result = error
        return time.perf_counter(), result

    async def main():
        start = time.perf_counter()
        hung = asyncio.create_task(
            timed(client.achat_completion(USER, model="openai", max_tokens=5, cache=False))
        )
        await asyncio.sleep(0.05)  # the hung request is in flight
        healthy = await timed(
            client.achat_completion(USER, model="ollama", max_tokens=5, cache=False)
        )
        return start, healthy, await hung

    start, (healthy_end, healthy), (hung_end, hung) = asyncio.run(main())
    assert isinstance(healthy, dict) and healthy["provider"] == "ollama"
    assert isinstance(hung, LLMTimeoutError) and hung.provider == "openai"
    assert hung_end - start >= 0.45  # the 0.5 s timeout, not sooner
    assert healthy_end <= hung_end - 0.25  # long before the hung call timed out


def _forbidden_sleep(seconds: float) -> None:
    raise AssertionError(f"the async path called the blocking sleep({seconds})")


def _call_beside_a_ticker(client: LLMClient, monkeypatch) -> tuple[float, float, list, dict]:
    """One achat_completion while a 10 ms ticker task runs on the same loop.

    Returns the call's duration, the longest stretch the ticker could not run during the
    call, the ``asyncio.sleep`` durations the client awaited (a wrapper records them),
    and the response.
    """
    awaited: list[float] = []
    real_sleep = asyncio.sleep

    async def recording_sleep(delay, *args, **kwargs):
        if asyncio.current_task() is not None and asyncio.current_task().get_name() == "call":
            awaited.append(delay)
        return await real_sleep(delay, *args, **kwargs)

    monkeypatch.setattr(asyncio, "sleep", recording_sleep)

    async def main():
        ticks: list[float] = []
        done = asyncio.Event()

        async def ticker():
            while not done.is_set():
                ticks.append(time.perf_counter())
                await real_sleep(0.01)

        task = asyncio.create_task(ticker())
        await real_sleep(0)
        start = time.perf_counter()
        call = asyncio.create_task(
            client.achat_completion(USER, max_tokens=5, cache=False), name="call"
        )
        response = await call
        end = time.perf_counter()
        done.set()
        await task
        during = [t for t in ticks if start <= t <= end]
        gaps = [b - a for a, b in zip([start, *during], [*during, end], strict=True)]
        return end - start, max(gaps), response

    duration, longest_gap, response = asyncio.run(main())
    return duration, longest_gap, awaited, response


def test_backoff_between_retries_is_an_asyncio_sleep(sim_env, monkeypatch):
    client = make_client("openai", None)
    client._sleep = _forbidden_sleep  # the sync driver's seam: the async path must not use it
    client.config.providers["openai"].retry_delay = 0.2
    achat(client, USER, max_tokens=5, cache=False)  # warm the route up
    sim_env.reset_requests()
    sim_env.set_fault("openai", Fault.SERVER_ERROR, times=1)
    duration, longest_gap, awaited, response = _call_beside_a_ticker(client, monkeypatch)
    assert [a["outcome"] for a in response["attempts"]] == ["error", "success"]
    assert sim_env.request_count("openai") == 2
    backoffs = [s for s in awaited if s >= 0.2]
    assert len(backoffs) == 1 and backoffs[0] <= 0.4 + 1e-9  # 0.2 s, plus up to 0.2 s jitter
    assert duration >= backoffs[0]
    # The backoff went through asyncio.sleep (awaited) and never time.sleep (forbidden):
    # that is the non-blocking guarantee, asserted without timing the loop.
    assert longest_gap < duration


def test_retry_after_wait_is_an_asyncio_sleep(sim_env, monkeypatch):
    """After a 429 with Retry-After, the next call waits out the pause without blocking."""
    client = make_client("openai", None)
    client._sleep = _forbidden_sleep
    sim_env.set_fault("openai", Fault.RATE_LIMIT, retry_after=0.6, times=1)
    with pytest.raises(AllProvidersFailedError) as caught:
        achat(client, USER, max_tokens=5, cache=False)
    assert caught.value.provider_errors["openai"].retry_after == pytest.approx(0.6)
    duration, longest_gap, awaited, response = _call_beside_a_ticker(client, monkeypatch)
    assert response["provider"] == "openai"
    assert sim_env.request_count("openai") == 2
    assert awaited and 0 < sum(awaited) <= 0.6 + 1e-6  # what is left of the pause
    assert duration >= sum(awaited)
    assert longest_gap < duration  # the ticker ran during the call


def test_call_cancelled_after_sending_is_charged_its_reservation(sim_env):
    sim_env.set_fault("openai", Fault.HANG)
    client = make_client("openai", None)
    client.config.providers["openai"].timeout = 5

    async def main():
        task = asyncio.create_task(client.achat_completion(USER, max_tokens=5, cache=False))
        while sim_env.request_count("openai") == 0:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    started = time.perf_counter()
    asyncio.run(main())
    assert time.perf_counter() - started < 4  # cancelled, not waiting out the 5 s timeout
    assert LedgerWorker.for_ledger(client.ledger).drain()
    [row] = client.ledger.rows()
    assert (row["outcome"], row["error_class"], row["estimated"]) == ("error", "Cancelled", 1)
    assert row["completion_tokens"] == 5  # the provider may bill the whole answer
    charged = list_cost(client, "openai", row["prompt_tokens"], row["completion_tokens"])
    assert row["cost_usd"] == pytest.approx(charged)
    assert row["cost_usd"] > 0
    assert client.ledger.spend(period="day") == pytest.approx(row["cost_usd"])


def test_wait_for_timeout_cancels_cleanly(sim_env):
    sim_env.set_fault("openai", Fault.HANG)
    client = make_client("openai", None)
    client.config.providers["openai"].timeout = 5

    async def main():
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(client.achat_completion(USER, max_tokens=5), 0.3)

    asyncio.run(main())
    sim_env.clear_faults()
    response = achat(client, USER, max_tokens=5)  # the cache key was freed
    assert response["provider"] == "openai" and response["cached"] is False


# -- cache and budgets ----------------------------------------------------------------------


def test_concurrent_identical_calls_share_one_provider_call(sim_env):
    client = make_client("openai", None)
    client.config.enable_caching = True

    async def main():
        first = await asyncio.gather(
            client.achat_completion(USER, temperature=0, max_tokens=20),
            client.achat_completion(USER, temperature=0, max_tokens=20),
        )
        later = await client.achat_completion(USER, temperature=0, max_tokens=20)
        return first, later

    (one, two), later = asyncio.run(main())
    assert sim_env.request_count("openai") == 1
    assert one["choices"] == two["choices"] and one["provider"] == two["provider"] == "openai"
    assert one is not two  # each caller gets its own copy
    # one caller paid for the answer; the other shared it without being charged again
    [paid] = [r for r in (one, two) if not r["cached"]]
    assert paid["cost"] > 0
    assert one["cost"] + two["cost"] == pytest.approx(paid["cost"])
    assert later["cached"] is True and later["cost"] == 0.0
    assert later["choices"] == one["choices"]
    assert later["attempts"][0]["outcome"] == "cache_hit"
    rows = client.ledger.rows()
    assert [r["outcome"] for r in rows].count("success") == 1
    assert rows[-1]["outcome"] == "cache_hit" and rows[-1]["cost_usd"] == 0
    assert sum(r["cost_usd"] for r in rows) == pytest.approx(paid["cost"])
    # a fresh event loop still hits the same cache
    again = achat(client, USER, temperature=0, max_tokens=20)
    assert again["cached"] is True and sim_env.request_count("openai") == 1


def test_cache_false_bypasses_the_cache(sim_env):
    client = make_client("openai", None)
    client.config.enable_caching = True
    achat(client, USER, max_tokens=20)
    response = achat(client, USER, max_tokens=20, cache=False)
    assert response["cached"] is False
    assert sim_env.request_count("openai") == 2


def test_daily_budget_refuses_before_any_call(sim_env, monkeypatch):
    monkeypatch.setenv("LLM_DAILY_COST_LIMIT", "0.000001")
    monkeypatch.setenv("OLLAMA_ENABLED", "false")
    config = LLMConfig(enable_caching=False)
    assert not config.providers["ollama"].enabled
    client = LLMClient(config)
    with pytest.raises(LLMQuotaExceededError) as caught:
        achat(client, USER, max_tokens=20)
    assert "daily_cost_limit" in str(caught.value)
    assert caught.value.metadata["limit"] == "daily_cost_limit"
    assert sum(sim_env.request_count(p) for p in PROTOCOLS) == 0
    assert client.ledger.rows() == []


def test_cancelled_while_reserving_gives_back_the_permit_and_the_row(sim_env):
    import threading

    client = make_client("openai", None)
    ledger = client.ledger
    gate, run_batch = threading.Event(), ledger.run_batch
    ledger.run_batch = lambda ops, **kw: gate.wait(5) and run_batch(ops, **kw)  # type: ignore[method-assign]

    async def main():
        task = asyncio.create_task(client.achat_completion(USER, max_tokens=5, cache=False))
        await asyncio.sleep(0.1)  # waiting for its reservation
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        gate.set()
        for _ in range(200):  # the reservation lands after its caller left, and is given back
            await asyncio.sleep(0.01)
            rows = ledger.rows()
            if rows and rows[0]["outcome"] != "pending":
                break

    asyncio.run(main())
    assert [(r["outcome"], r["error_class"]) for r in ledger.rows()] == [("error", "Cancelled")]
    assert client.get_provider_status()["openai"]["requests_in_window"] == 0
    assert sim_env.request_count("openai") == 0
