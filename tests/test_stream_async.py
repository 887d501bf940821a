"""Streaming end to end, asyncio client: the same fault matrix and checks as the blocking
client (tests/stream_cases.py), plus leaving early with ``aclose`` and concurrency."""

from __future__ import annotations

import asyncio

import pytest

from leadfactory.llm import LLMStreamInterruptedError
from leadfactory.llm.simulator.streaming import StreamFault

from .stream_cases import (
    AFTER,
    BEFORE,
    FAILING_REPLY,
    PROVIDER,
    ROUTES,
    USER,
    check_fell_back,
    check_interrupted,
    make_client,
    pieces,
    replies_restored,  # noqa: F401  (autouse fixture)
    set_replies,
    timeouts,
)


async def read(stream) -> str:
    text = []
    async for chunk in stream:
        if chunk["choices"]:
            text.append(chunk["choices"][0]["delta"].get("content") or "")
    return "".join(text)


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("fault", list(BEFORE))
def test_fault_before_first_content_falls_back(sim_env, route, fault):
    set_replies(sim_env, route)
    BEFORE[fault](sim_env, PROVIDER[route])
    client = make_client(route, **timeouts(fault, after=False))

    async def main():
        async with await client.achat_completion(USER, max_tokens=20, stream=True) as stream:
            return await read(stream), stream.response

    text, summary = asyncio.run(main())
    check_fell_back(sim_env, client, route, text, summary)


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("fault", list(AFTER))
def test_fault_after_first_content_raises_with_the_text_so_far(sim_env, route, fault):
    set_replies(sim_env, route)
    sim_env.set_stream_fault(PROVIDER[route], AFTER[fault], after=2)
    client = make_client(route, **timeouts(fault, after=True))
    received: list[str] = []

    async def main():
        stream = await client.achat_completion(USER, max_tokens=20, stream=True)
        async for chunk in stream:
            if chunk["choices"]:
                received.append(chunk["choices"][0]["delta"].get("content") or "")

    with pytest.raises(LLMStreamInterruptedError) as caught:
        asyncio.run(main())
    check_interrupted(sim_env, client, route, "".join(received), caught.value)


@pytest.mark.parametrize("route", ROUTES)
def test_leaving_with_aclose_settles_and_closes_the_connection(sim_env, route):
    set_replies(sim_env, route)
    provider = PROVIDER[route]
    sim_env.set_stream_fault(provider, StreamFault.OK, interval=0.05)
    client = make_client(route)

    async def main():
        seen = []
        stream = await client.achat_completion(USER, max_tokens=20, stream=True)
        async for chunk in stream:
            if chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                seen.append(chunk["choices"][0]["delta"]["content"])
            if len(seen) == 2:
                break
        await stream.aclose()
        for _ in range(100):  # the server notices the close on its next write
            if sim_env.stream_records(provider)[-1]["client_closed"]:
                break
            await asyncio.sleep(0.02)
        return "".join(seen)

    assert asyncio.run(main()) == "".join(pieces(FAILING_REPLY)[:2])
    [row] = client.ledger.rows()
    assert row["outcome"] == "error" and row["error_class"] == "Cancelled"
    assert row["estimated"] == 1
    record = sim_env.stream_records(provider)[-1]
    assert record["client_closed"] and not record["complete"]


def test_completed_streams_at_concurrency_each_settle(sim_env):
    sim_env.set_reply("openai", FAILING_REPLY)
    client = make_client("openai")

    async def one():
        stream = await client.achat_completion(USER, max_tokens=20, stream=True)
        return await read(stream), stream.cost

    async def main():
        return await asyncio.gather(*(one() for _ in range(20)))

    results = asyncio.run(main())
    assert {text for text, _ in results} == {FAILING_REPLY}
    rows = client.ledger.rows()
    assert len(rows) == 20 and {r["outcome"] for r in rows} == {"success"}
    assert sum(r["cost_usd"] for r in rows) == pytest.approx(sum(cost for _, cost in results))


def test_a_completed_stream_is_replayed_from_the_cache(sim_env):
    sim_env.set_reply("openai", FAILING_REPLY)
    client = make_client("openai", cache=True)

    async def main():
        first = await client.achat_completion(USER, max_tokens=20, stream=True)
        text = await read(first)
        again = await client.achat_completion(USER, max_tokens=20, stream=True)
        return text, await read(again), again

    text, replayed, again = asyncio.run(main())
    assert replayed == text == FAILING_REPLY
    assert again.cached is True and again.cost == 0
    assert sim_env.request_count("openai") == 1
    assert [r["outcome"] for r in client.ledger.rows()] == ["success", "cache_hit"]
