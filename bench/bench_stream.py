"""Streaming: LLMClient.chat_completion(stream=True) vs bare litellm.completion(stream=True).

    python bench/bench_stream.py [--quick] [--calls 200]

Both stream from the same simulator endpoint (OpenAI's SSE) and the same model
(``_common.CLIENT_MODELS``, not the configuration's default), asking for usage in the
stream. The client runs with the ledger on (reserve before, settle after) and the cache
off. Three measurements, the cases interleaved in a random order per step, each case as a
burst whose first stream is not timed (it absorbs the background work LiteLLM left
running after the previous case's stream: see :func:`interleave`):

- time to first token: from the call to the first chunk with text (short answers);
- throughput: chunks per second over whole 500-chunk answers;
- async at concurrency 50: 50 streams of 100 chunks at once, chunks per second overall.

For reference, bare LiteLLM also runs with its stream logging turned off (by its module
global): the client turns that logging off for its own streams when nothing reads it,
so the targets' comparison (client vs bare as users run it) includes that saving, and
the reference rows show what the client costs without it on either side.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

from _common import (
    CLIENT_MODELS,
    banner,
    bare_args,
    bursts,
    load_litellm,
    median,
    messages,
    paired_median_diff,
    parse_args,
    simulator,
    table,
    target_cell,
)

LONG = 500  # chunks in a throughput answer
# bare LiteLLM with its per-chunk stream logging off (litellm.disable_streaming_logging,
# a module global the library never sets; the client skips that logging itself when no
# LiteLLM callback reads it): the client's own cost, without LiteLLM's logging either side
UNLOGGED = "bare, LiteLLM logging off"
CONCURRENCY, ASYNC_CHUNKS = 50, 100


def has_text(chunk: Any) -> bool:
    """A chunk with text: a dict from the client, an object from LiteLLM."""
    if isinstance(chunk, dict):
        return bool(chunk["choices"] and chunk["choices"][0]["delta"].get("content"))
    return bool(chunk.choices and chunk.choices[0].delta.content)


def timed(open_stream: Any) -> tuple[float, float, int]:
    """(ms to the first text, ms to the end, chunks) of one stream."""
    start = time.perf_counter()
    first, count = None, 0
    for chunk in open_stream():
        count += 1
        if first is None and has_text(chunk):
            first = time.perf_counter()
    end = time.perf_counter()
    return (first - start) * 1000.0, (end - start) * 1000.0, count


async def atimed(open_stream: Any) -> int:
    count = 0
    async for _ in await open_stream():
        count += 1
    return count


def interleave(
    cases: dict[str, Any], timed_runs: int, warmup: int = 5, burst: int = 4
) -> dict[str, list]:
    """``timed_runs`` results per case, the cases interleaved in bursts whose first
    stream is not recorded (``_common.bursts``): LiteLLM logs every chunk of a blocking
    stream on a background thread, which goes on after the stream ended and takes the
    GIL whenever the next stream lets go of it."""
    for fn in cases.values():
        for _ in range(warmup):
            fn()
    results: dict[str, list] = {name: [] for name in cases}
    for name, recorded in bursts(list(cases), timed_runs, burst):
        result = cases[name]()
        if recorded:
            results[name].append(result)
    return results


def main() -> None:
    args = parse_args(__doc__, calls=(int, 200, "timed streams per case"))
    calls = 30 if args.quick else args.calls
    banner(
        "bench_stream: client stream vs bare LiteLLM stream",
        f"{calls} short streams and {max(10, calls // 10)} of {LONG} chunks per case, "
        f"interleaved; async: {CONCURRENCY} concurrent streams of {ASYNC_CHUNKS} chunks; "
        "ledger on, cache off",
    )
    with simulator() as (sim, _tmp):
        litellm = load_litellm()
        from leadfactory.llm import LLMClient, LLMConfig

        client = LLMClient(LLMConfig(enable_caching=False))
        usage = {"stream_options": {"include_usage": True}}

        def client_stream(prompt: list[dict], tokens: int):
            return lambda: client.chat_completion(
                prompt, model=CLIENT_MODELS["openai"], max_tokens=tokens, stream=True
            )

        def bare_stream(prompt: list[dict], tokens: int):
            arguments = bare_args(sim, prompt, "openai") | usage | {"max_tokens": tokens}
            return lambda: litellm.completion(**arguments, stream=True)

        def unlogged(timing):  # reference: LiteLLM's stream logging off, by its global
            def run():
                litellm.disable_streaming_logging = True  # the bench's, never the library's
                try:
                    return timing()
                finally:
                    litellm.disable_streaming_logging = False

            return run

        short = messages("Say hello.")
        ttft = interleave(
            {
                "client": lambda: timed(client_stream(short, 20)),
                "bare": lambda: timed(bare_stream(short, 20)),
                UNLOGGED: unlogged(lambda: timed(bare_stream(short, 20))),
            },
            calls,
        )
        sim.set_reply("openai", " ".join(f"w{i}" for i in range(LONG)))
        long_prompt = messages("Write a long answer.")
        whole = interleave(
            {
                "client": lambda: timed(client_stream(long_prompt, LONG)),
                "bare": lambda: timed(bare_stream(long_prompt, LONG)),
                UNLOGGED: unlogged(lambda: timed(bare_stream(long_prompt, LONG))),
            },
            max(10, calls // 10),
            warmup=2,
            burst=2,
        )
        sim.set_reply("openai", " ".join(f"w{i}" for i in range(ASYNC_CHUNKS)))
        rates = concurrent(client, litellm, sim, usage, max(3, calls // 40))
        client.close()

    first = {name: [t[0] for t in runs] for name, runs in ttft.items()}
    per_second = {name: [1000.0 * n / ms for _, ms, n in runs] for name, runs in whole.items()}
    table(
        [
            "case",
            "TTFT median ms",
            f"{LONG}-chunk chunks/s (median)",
            f"async x{CONCURRENCY} chunks/s",
        ],
        [
            [n, median(first[n]), median(per_second[n]), median(rates.get(n, [float("nan")]))]
            for n in ("client", "bare", UNLOGGED)
        ],
    )
    print()
    added = paired_median_diff(first["client"], first["bare"])
    through = median(per_second["client"]) / median(per_second["bare"])
    in_async = median(rates["client"]) / median(rates["bare"])
    table(
        ["measure", "value", "target"],
        [
            [
                "TTFT added by the client, ms (median of paired differences)",
                added,
                target_cell(added, 1.0),
            ],
            ["throughput client / bare", through, target_cell(through, 0.95, at_most=False)],
            [
                f"async x{CONCURRENCY} client / bare",
                in_async,
                target_cell(in_async, 0.9, at_most=False),
            ],
            [
                f"reference: TTFT added vs {UNLOGGED}, ms",
                paired_median_diff(first["client"], first[UNLOGGED]),
                "-",
            ],
            [
                f"reference: throughput client / {UNLOGGED}",
                median(per_second["client"]) / median(per_second[UNLOGGED]),
                "-",
            ],
        ],
    )


def concurrent(client: Any, litellm: Any, sim: Any, usage: dict, rounds: int) -> dict[str, list]:
    """Chunks per second of CONCURRENCY streams at once, client and bare in turn."""
    prompt = messages("Write an answer.")
    arguments = bare_args(sim, prompt, "openai") | usage | {"max_tokens": ASYNC_CHUNKS}

    async def client_one() -> int:
        return await atimed(
            lambda: client.achat_completion(
                prompt, model=CLIENT_MODELS["openai"], max_tokens=ASYNC_CHUNKS, stream=True
            )
        )

    async def bare_one() -> int:
        return await atimed(lambda: litellm.acompletion(**arguments, stream=True))

    async def burst(one: Any) -> float:
        start = time.perf_counter()
        counts = await asyncio.gather(*(one() for _ in range(CONCURRENCY)))
        return sum(counts) / (time.perf_counter() - start)

    async def run() -> dict[str, list]:
        cases = {"client": client_one, "bare": bare_one}
        for one in cases.values():  # warm-up: connections, the ledger's writer thread
            await burst(one)
        rates: dict[str, list] = {name: [] for name in cases}
        rng = random.Random(2)
        for _ in range(rounds):
            for name in rng.sample(list(cases), len(cases)):
                rates[name].append(await burst(cases[name]))
        return rates

    return asyncio.run(run())


if __name__ == "__main__":
    main()
