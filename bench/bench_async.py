"""Async throughput at concurrency 100: LLMClient.achat_completion vs litellm.acompletion.

    python bench/bench_async.py [--quick] [--requests 2000] [--concurrency 100] [--rounds 3]

Each run sends ``--requests`` requests from ``--concurrency`` worker tasks on one
event loop to the simulator's OpenAI endpoint. Client and bare runs alternate
(client first in even rounds, bare first in odd ones); the figures are the
medians over rounds. The client runs with the ledger on, limits on (never hit)
and ``cache=False``. "loop CPU" is the event-loop thread's CPU time per request
(``time.thread_time``): the work, without the simulator's thread, and steadier
than req/s on a busy machine.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from _common import (
    CLIENT_MODELS,
    banner,
    bare_acompletion,
    load_litellm,
    median,
    messages,
    parse_args,
    percentile,
    simulator,
    table,
    target_cell,
)

LIMITS = {"OPENAI_RATE_LIMIT_RPM": "1000000", "OPENAI_RATE_LIMIT_TPM": "1000000000"}


async def run(
    call: Callable[[int], Awaitable[object]], requests: int, concurrency: int
) -> tuple[float, list[float]]:
    """Requests per second, per-request latencies (ms) and event-loop thread CPU ms
    per request for one run."""
    numbers = iter(range(requests))
    latencies: list[float] = []

    async def worker() -> None:
        for i in numbers:
            start = time.perf_counter()
            await call(i)
            latencies.append((time.perf_counter() - start) * 1000.0)

    start, cpu = time.perf_counter(), time.thread_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    cpu_ms = (time.thread_time() - cpu) * 1000.0 / requests
    return requests / (time.perf_counter() - start), latencies, cpu_ms


async def measure(sim, requests: int, concurrency: int, rounds: int) -> dict[str, list[tuple]]:
    from leadfactory.llm import LLMClient, LLMConfig

    client = LLMClient(LLMConfig(fallback_strategy="smart_fallback", enable_caching=False))

    def prompt(i: int) -> list[dict]:
        return messages(f"Say hello, call number {i}.")

    cases = {
        "client": lambda i: client.achat_completion(
            prompt(i), model=CLIENT_MODELS["openai"], max_tokens=20, cache=False
        ),
        "bare": lambda i: bare_acompletion(sim, prompt(i), "openai"),
    }
    for call in cases.values():  # warm-up: connection pools, lazy imports, ledger file
        await run(call, concurrency * 2, concurrency)
    results: dict[str, list[tuple]] = {name: [] for name in cases}
    for r in range(rounds):
        order = list(cases) if r % 2 == 0 else list(reversed(cases))
        for name in order:
            rps, lat, cpu_ms = await run(cases[name], requests, concurrency)
            results[name].append((rps, percentile(lat, 50), percentile(lat, 99), cpu_ms))
    client.close()
    return results


def main() -> None:
    args = parse_args(
        __doc__,
        requests=(int, 2000, "requests per run"),
        concurrency=(int, 100, "worker tasks"),
        rounds=(int, 3, "runs of each (alternating)"),
    )
    requests, rounds = (500, 1) if args.quick else (args.requests, args.rounds)
    banner(
        f"bench_async: throughput at concurrency {args.concurrency}, client vs bare LiteLLM",
        f"{rounds} rounds x {requests} requests per case, {args.concurrency} worker tasks, "
        f"after 2 x {args.concurrency} warm-up requests; max_tokens=20; ledger on; limits on",
    )
    with simulator(**LIMITS) as (sim, _tmp):
        load_litellm()
        results = asyncio.run(measure(sim, requests, args.concurrency, rounds))

    summary = {
        name: [median([run[k] for run in runs]) for k in range(4)] for name, runs in results.items()
    }
    table(
        ["case", "req/s", "p50 ms", "p99 ms", "loop CPU ms/req", "req/s per round"],
        [
            [name, *summary[name], " ".join(f"{run[0]:.0f}" for run in runs)]
            for name, runs in results.items()
        ],
    )
    ratio = summary["client"][0] / summary["bare"][0]
    print()
    table(
        ["ratio", "value", "target"],
        [
            ["throughput client / bare", ratio, target_cell(ratio, 0.9, at_most=False)],
            ["p50 latency client / bare", summary["client"][1] / summary["bare"][1], "-"],
            ["p99 latency client / bare", summary["client"][2] / summary["bare"][2], "-"],
            ["loop CPU per request client / bare", summary["client"][3] / summary["bare"][3], "-"],
        ],
    )


if __name__ == "__main__":
    main()
