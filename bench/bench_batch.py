"""Batch throughput at concurrency 50: LLMClient.amap vs a hand-written asyncio.gather.

    python bench/bench_batch.py [--quick] [--requests 2000] [--concurrency 50] [--rounds 3]

Both cases send ``--requests`` requests with unique prompts to the simulator's OpenAI
endpoint through the same client (ledger on, limits on but never hit, ``cache=False``):

- ``amap``: ``await client.amap(requests, concurrency=50, progress=False)``; the items
  have no id, so each one's cache key is computed (the costlier path);
- ``gather``: the loop people write by hand: ``asyncio.gather`` over one task per
  request, each ``achat_completion`` under an ``asyncio.Semaphore(50)`` and catching
  ``LLMError``;
- ``amap, named run`` (for reference, no target): ``amap`` with ``run=`` set, so every
  answer is also written to the run table.

The cases alternate (the order reversed every round); the figures are medians over
rounds. "loop CPU" is the event-loop thread's CPU time per request
(``time.thread_time``): the work, without the simulator's thread, and steadier than
req/s on a busy machine.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable

from _common import (
    alternating,
    banner,
    load_litellm,
    median,
    messages,
    parse_args,
    simulator,
    table,
    target_cell,
)

LIMITS = {"OPENAI_RATE_LIMIT_RPM": "1000000", "OPENAI_RATE_LIMIT_TPM": "1000000000"}
TARGET = 0.95  # amap / gather throughput


async def timed(run: Callable[[], Awaitable[int]], requests: int) -> tuple[float, float]:
    """Requests per second and event-loop CPU ms per request of one run."""
    start, cpu = time.perf_counter(), time.thread_time()
    answered = await run()
    wall = time.perf_counter() - start
    if answered != requests:
        raise SystemExit(f"only {answered} of {requests} requests were answered")
    return requests / wall, (time.thread_time() - cpu) * 1000.0 / requests


async def measure(requests: int, concurrency: int, rounds: int) -> dict[str, list[tuple]]:
    from leadfactory.llm import LLMClient, LLMConfig, LLMError

    client = LLMClient(LLMConfig(fallback_strategy="smart_fallback", enable_caching=False))
    batch_number = iter(range(1_000_000))

    def batch(n: int) -> list[dict]:
        tag = next(batch_number)  # unique prompts in every run
        return [
            {
                "messages": messages(f"Say hello, batch {tag} call {i}."),
                "model": "openai",
                "max_tokens": 20,
                "cache": False,
            }
            for i in range(n)
        ]

    def amap(n: int, run: str | None = None) -> Callable[[], Awaitable[int]]:
        async def go() -> int:
            results = await client.amap(batch(n), concurrency=concurrency, progress=False, run=run)
            return sum(1 for item in results.items if item.status == "answered")

        return go

    def gather(n: int) -> Callable[[], Awaitable[int]]:
        async def go() -> int:
            limit = asyncio.Semaphore(concurrency)

            async def one(request: dict) -> dict | LLMError:
                async with limit:
                    try:
                        return await client.achat_completion(**request)
                    except LLMError as error:
                        return error

            results = await asyncio.gather(*(one(r) for r in batch(n)))
            return sum(1 for r in results if not isinstance(r, LLMError))

        return go

    cases: dict[str, Callable[[int], Callable[[], Awaitable[int]]]] = {
        "amap": amap,
        "gather": gather,
        "amap, named run": lambda n: amap(n, run=f"bench-{uuid.uuid4().hex}"),
    }
    for make in cases.values():  # warm-up: connection pools, lazy imports, ledger file
        await timed(make(concurrency * 2), concurrency * 2)
    results: dict[str, list[tuple]] = {name: [] for name in cases}
    for name in alternating(list(cases), rounds):
        results[name].append(await timed(cases[name](requests), requests))
    client.close()
    return results


def main() -> None:
    args = parse_args(
        __doc__,
        requests=(int, 2000, "requests per run"),
        concurrency=(int, 50, "requests in flight"),
        rounds=(int, 3, "runs of each case (alternating)"),
    )
    requests, rounds = (500, 1) if args.quick else (args.requests, args.rounds)
    banner(
        f"bench_batch: amap vs asyncio.gather + Semaphore at concurrency {args.concurrency}",
        f"{rounds} rounds x {requests} requests per case, after 2 x {args.concurrency}"
        " warm-up requests; max_tokens=20; ledger on; limits on; cache=False",
    )
    with simulator(**LIMITS) as (_sim, _tmp):
        load_litellm()
        results = asyncio.run(measure(requests, args.concurrency, rounds))
    summary = {
        name: [median([run[k] for run in runs]) for k in range(2)] for name, runs in results.items()
    }
    table(
        ["case", "req/s", "loop CPU ms/req", "req/s per round"],
        [
            [name, *summary[name], " ".join(f"{run[0]:.0f}" for run in runs)]
            for name, runs in results.items()
        ],
    )
    ratio = summary["amap"][0] / summary["gather"][0]
    print()
    table(
        ["ratio", "value", "target"],
        [
            ["throughput amap / gather", ratio, target_cell(ratio, TARGET, at_most=False)],
            ["loop CPU per request amap / gather", summary["amap"][1] / summary["gather"][1], "-"],
            [
                "throughput named run / gather",
                summary["amap, named run"][0] / summary["gather"][0],
                "-",
            ],
        ],
    )


if __name__ == "__main__":
    main()
