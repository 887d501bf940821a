"""End-to-end over real HTTP for the asyncio twin, ``LLMClient.achat_completion``.

Mirrors tests/test_client_e2e.py (the same fault matrix, per wire protocol) and adds what
only the async path can get wrong: concurrency on one event loop, sleeps that must be
``asyncio.sleep``, a hung provider that must not block other tasks, and cancellation.
There is no pytest-asyncio: each test drives its coroutine with ``asyncio.run``.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from leadfactory.llm import (
    AllProvidersFailedError,
    LLMAuthenticationError,
    LLMClient,
    LLMConfig,
    LLMQuotaExceededError,
    LLMTimeoutError,
    LLMValidationError,
)
from leadfactory.llm.ledger import LedgerWorker
from leadfactory.llm.simulator import Fault

from .conftest import SENTINEL_KEY, list_cost
from .test_client_e2e import (  # the sync tests' fault table and client, shared
    BACKUP,
    FAULTS,
    LAST_PROVIDER_FAULTS,
    PROTOCOLS,
    USER,
    check_fail_fast,
    check_fallback,
    check_last_provider_error,
    check_normal_answer,
    check_slow_answer,
    fail_fast_client,
    make_client,
)


def achat(client: LLMClient, *args, **kwargs) -> dict:
    return asyncio.run(client.achat_completion(*args, **kwargs))


@pytest.fixture(scope="module", autouse=True)
def _litellm_loaded():
    """Import LiteLLM once, so the timing tests measure calls, not a 4 s import."""
    from leadfactory.llm.providers import load_litellm

    load_litellm()


# -- the sync tests' twins ---------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_async_normal_answer_has_the_documented_shape(sim_env, protocol):
    client = LLMClient(LLMConfig(enable_caching=False))
    response = achat(client, USER, model=protocol, temperature=0, max_tokens=50)
    check_normal_answer(sim_env, client, response, protocol)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_async_and_sync_answers_agree(sim_env, protocol):
    client = LLMClient(LLMConfig(enable_caching=False))
    sync = client.chat_completion(USER, model=protocol, temperature=0, max_tokens=50)
    asynchronous = achat(client, USER, model=protocol, temperature=0, max_tokens=50)
    volatile = {"id", "created", "latency_ms", "request_id", "attempts"}
    assert {k: v for k, v in sync.items() if k not in volatile} == {
        k: v for k, v in asynchronous.items() if k not in volatile
    }
    assert sim_env.requests(protocol)[0]["json"] == sim_env.requests(protocol)[1]["json"]


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("fault", list(FAULTS), ids=lambda f: f.value)
def test_async_fault_falls_back_after_the_documented_retries(sim_env, protocol, fault):
    sim_env.set_fault(protocol, fault, retry_after=3)
    client = make_client(protocol, BACKUP[protocol])
    if fault is Fault.HANG:  # each attempt waits out the whole timeout: keep it short
        client.config.providers[protocol].timeout = 0.3
    response = achat(client, USER, max_tokens=20)
    check_fallback(sim_env, client, response, protocol, fault)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_async_slow_answer_within_the_timeout_is_waited_for(sim_env, protocol):
    sim_env.set_fault(protocol, Fault.DELAY, delay=0.3)
    client = make_client(protocol, BACKUP[protocol])
    client.config.providers[protocol].timeout = 2.0
    response = achat(client, USER, max_tokens=20)
    check_slow_answer(sim_env, client, response, protocol)


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("fault", LAST_PROVIDER_FAULTS, ids=lambda f: f.value)
def test_async_error_is_classified_when_no_provider_is_left(sim_env, protocol, fault):
    sim_env.set_fault(protocol, fault, retry_after=3)
    client = make_client(protocol, None)
    with pytest.raises(AllProvidersFailedError) as caught:
        achat(client, USER, max_tokens=20)
    check_last_provider_error(client, caught.value, protocol, fault)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_async_fail_fast_raises_the_classified_error_itself(sim_env, protocol):
    sim_env.set_fault(protocol, Fault.UNAUTHORIZED)
    client = fail_fast_client(protocol)
    with pytest.raises(LLMAuthenticationError) as caught:
        achat(client, USER, max_tokens=20)
    check_fail_fast(sim_env, client, caught.value, protocol)


def test_async_retry_then_success_on_the_same_provider(sim_env):
    sim_env.set_fault("openai", Fault.SERVER_ERROR, times=2)
    client = make_client("openai", "ollama")
    response = achat(client, USER, max_tokens=20)
    assert response["provider"] == "openai"
    assert [a["outcome"] for a in response["attempts"]] == ["error", "error", "success"]
    assert sim_env.request_count("openai") == 3 and sim_env.request_count("ollama") == 0
    outcomes = [(r["provider"], r["outcome"]) for r in client.ledger.rows()]
    assert outcomes == [("openai", "error")] * 2 + [("openai", "success")]


def test_async_litellm_never_retries_on_its_own(sim_env):
    sim_env.set_fault("openai", Fault.RATE_LIMIT, retry_after=0)
    client = make_client("openai", None)
    with pytest.raises(AllProvidersFailedError):
        achat(client, USER, max_tokens=20)
    assert sim_env.request_count("openai") == 1


def test_async_bad_input_costs_nothing(sim_env):
    client = LLMClient(LLMConfig(enable_caching=False))
    for bad in ([], "hello", [{"role": "robot", "content": "x"}], [{"role": "user"}]):
        with pytest.raises(LLMValidationError) as caught:
            achat(client, bad)
        assert caught.value.provider is None and "messages" in str(caught.value)
    with pytest.raises(LLMValidationError, match="temperature"):
        achat(client, USER, temperature=3)
    with pytest.raises(LLMValidationError, match="max_tokens"):
        achat(client, USER, max_tokens=0)
    with pytest.raises(LLMValidationError, match="bogus"):
        achat(client, USER, bogus=1)
    with pytest.raises(LLMValidationError, match="stream"):
        achat(client, USER, stream="yes")  # stream=True streams: docs/streaming.md
    assert sum(sim_env.request_count(p) for p in PROTOCOLS) == 0
    assert client.ledger.rows() == []


def test_async_custom_openai_compatible_provider(sim_env):
    from leadfactory.llm import ProviderConfig

    name = "custom_async"  # the simulator lives for the session: add the listener once
    try:
        url = sim_env.add_provider(name, protocol="openai")
    except ValueError:
        url = sim_env.base_url(name)
    config = LLMConfig(enable_caching=False)
    config.providers[name] = ProviderConfig(
        name=name,
        api_key=SENTINEL_KEY,
        default_model="custom-model",
        base_url=url,
        cost_per_1k_tokens=0.01,
    )
    response = achat(LLMClient(config), USER, model=name)
    assert response["provider"] == name
    assert sim_env.requests(name)[-1]["json"]["model"] == "custom-model"


# -- what only the async path can get wrong -------------------------------------------------


def test_fifty_concurrent_calls_all_succeed(sim_env):
    client = make_client("openai", "ollama")

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
