"""SingleFlight across asyncio tasks: one call per key, its result or error shared.

Tasks make one call and share its result or error (and the key is free again); a
cancelled leader hands over to a follower; a cancelled follower does not disturb the
others; a re-entrant arun raises; event loops in two threads do not share calls.
"""

from __future__ import annotations

import asyncio
import threading

import pytest

from leadfactory.llm.cache import SingleFlight

from .cache_fixtures import WAIT, join, run_threads

# -- SingleFlight: asyncio ----------------------------------------------------------


async def gather_callers(flight, key, fn, n):
    """Start n callers, then yield until all are registered (arun registers before its
    first await), and return the gather future."""
    entered = 0

    async def caller():
        nonlocal entered
        entered += 1
        return await flight.arun(key, fn)

    tasks = [asyncio.ensure_future(caller()) for _ in range(n)]
    while entered < n:
        await asyncio.sleep(0)
    return tasks


def test_tasks_make_one_call_and_share_the_result():
    async def main():
        flight = SingleFlight()
        gate = asyncio.Event()
        calls = []
        result = {"answer": 42}

        async def fn():
            calls.append(1)
            await gate.wait()
            return result

        tasks = await gather_callers(flight, "k", fn, 20)
        gate.set()
        results = await asyncio.gather(*tasks)
        assert len(calls) == 1
        assert all(r is result for r in results)
        assert await flight.arun("k", fn) is result and len(calls) == 2

    asyncio.run(main())


def test_tasks_share_an_error_and_free_the_key():
    async def main():
        flight = SingleFlight()
        gate = asyncio.Event()
        boom = ValueError("bad request")

        async def fn():
            await gate.wait()
            raise boom

        tasks = await gather_callers(flight, "k", fn, 5)
        gate.set()
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        assert all(outcome is boom for outcome in outcomes)

        async def ok():
            return "recovered"

        assert await flight.arun("k", ok) == "recovered"

    asyncio.run(main())


def test_cancelled_leader_hands_over_to_a_follower():
    async def main():
        flight = SingleFlight()
        calls = []
        never = asyncio.Event()

        async def fn():
            calls.append(1)
            if len(calls) == 1:
                await never.wait()
            for _ in range(10):  # let the other followers find this new leader
                await asyncio.sleep(0)
            return "from the new leader"

        tasks = await gather_callers(flight, "k", fn, 4)
        await asyncio.sleep(0)  # the leader is now inside fn
        tasks[0].cancel()
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        assert isinstance(outcomes[0], asyncio.CancelledError)
        assert outcomes[1:] == ["from the new leader"] * 3
        assert len(calls) == 2

    asyncio.run(main())


def test_cancelled_follower_does_not_disturb_the_others():
    async def main():
        flight = SingleFlight()
        gate = asyncio.Event()
        calls = []

        async def fn():
            calls.append(1)
            await gate.wait()
            return "shared"

        tasks = await gather_callers(flight, "k", fn, 3)
        tasks[1].cancel()
        await asyncio.sleep(0)
        gate.set()
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        assert outcomes[0] == "shared" and outcomes[2] == "shared"
        assert isinstance(outcomes[1], asyncio.CancelledError)
        assert len(calls) == 1

    asyncio.run(main())


def test_reentrant_arun_raises():
    async def main():
        flight = SingleFlight()

        async def inner():
            return 1

        async def outer():
            return await flight.arun("k", inner)

        with pytest.raises(RuntimeError, match="re-entered"):
            await flight.arun("k", outer)

    asyncio.run(main())


def test_event_loops_in_two_threads_do_not_share_calls():
    flight = SingleFlight()
    started, release = threading.Event(), threading.Event()

    async def slow():
        started.set()
        await asyncio.get_running_loop().run_in_executor(None, release.wait, WAIT)
        return "first loop"

    async def fast():
        return "second loop"

    threads, results, errors = run_threads(1, lambda: asyncio.run(flight.arun("k", slow)))
    started.wait(WAIT)
    assert asyncio.run(flight.arun("k", fast)) == "second loop"
    release.set()
    join(threads)
    assert results == ["first loop"] and errors == [None]
