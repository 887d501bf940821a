"""Response cache: LLMClient.chat_completion hit latency (memory, disk) next to a miss.

    python bench/bench_cache.py [--quick] [--calls 300]

Cases, all pinned to the simulator's OpenAI endpoint with max_tokens=20 and the
ledger on (a hit writes a ledger row too):

* miss: a unique prompt each call, so the client calls the provider through
  LiteLLM and stores the answer;
* hit, memory: one stored prompt, served from the cache's in-memory front;
* hit, disk: the same stored prompt through a second client sharing the file,
  whose ResponseCache keeps nothing in memory (``memory_entries=0``): every hit
  reads and decodes a row of the SQLite file;
* hit, new client: a new LLMClient and ResponseCache per call on the same file
  (a process that restarted: opens the file, then a disk hit);
* bare litellm.completion with unique prompts, for reference.

The cases are interleaved in bursts of 4 whose first call is not timed (see
``_common.interleaved``). Wall ms is what a caller waits; CPU ms is the calling
thread's own work.
"""

from __future__ import annotations

from typing import Any

from _common import (
    CLIENT_MODELS,
    banner,
    bare_completion,
    interleaved,
    interleaved_calls,
    load_litellm,
    median,
    messages,
    percentile,
    simulator,
    table,
    target_cell,
)

MISS, BARE = "client miss (call + store)", "bare litellm.completion"
HITS = ("client hit, memory", "client hit, disk", "client hit, new client")
HIT_TARGET_MS = 1.0  # docs/caching.md: "a hit usually takes well under a millisecond"
STORED = messages("Name three uses for an anvil.")


def main() -> None:
    calls, settings = interleaved_calls(__doc__)
    banner(
        "bench_cache: response cache hits vs a miss vs bare LiteLLM",
        settings + "cache file in a temp dir",
    )
    with simulator() as (sim, tmp):
        load_litellm()
        from leadfactory.llm import LLMClient, LLMConfig
        from leadfactory.llm.cache import ResponseCache

        path = tmp / "cache.db"
        client = LLMClient(LLMConfig(enable_caching=True, cache_path=path))
        disk = LLMClient(
            client.config, ledger=client.ledger, cache=ResponseCache(path, memory_entries=0)
        )

        def ask(on: Any, prompt: list[dict], *, cached: bool) -> None:
            answer = on.chat_completion(prompt, model=CLIENT_MODELS["openai"], max_tokens=20)
            if answer["cached"] is not cached:
                raise SystemExit(f"expected cached={cached}, got {answer['cached']}")

        def new_client(_i: int) -> None:
            cache = ResponseCache(path)
            try:
                fresh = LLMClient(client.config, ledger=client.ledger, cache=cache)
                ask(fresh, STORED, cached=True)
            finally:
                cache.close()

        ask(client, STORED, cached=False)  # stores the answer every hit case reads...
        client.cache.flush()  # ...in the file now, not a moment later (the client writes behind)
        cases = {
            MISS: lambda i: ask(client, messages(f"Say hello, call {i}."), cached=False),
            HITS[0]: lambda _i: ask(client, STORED, cached=True),
            HITS[1]: lambda _i: ask(disk, STORED, cached=True),
            HITS[2]: new_client,
            BARE: lambda i: bare_completion(sim, messages(f"Say hello, call {i}.")),
        }
        wall, cpu = interleaved(cases, calls)
        served = client.cache.stats()["memory_hits"], disk.cache.stats()["disk_hits"]
        disk.cache.close()
        client.close()

    table(
        ["case", "median ms", "p99 ms", "CPU median ms"],
        [[n, median(wall[n]), percentile(wall[n], 99), median(cpu[n])] for n in cases],
    )
    print(f"\n(hits served from memory: {served[0]}; from disk, second client: {served[1]})\n")
    rows = []
    for name in (*HITS, MISS):
        hit = median(wall[name])
        rows.append(
            [
                name,
                hit / median(wall[MISS]),
                percentile(wall[name], 99) / percentile(wall[MISS], 99),
                hit / median(wall[BARE]),
                median(cpu[name]) / median(cpu[BARE]),
                target_cell(hit, HIT_TARGET_MS, unit=" ms") if name in HITS else "(reference)",
            ]
        )
    headers = ["case (ratio of medians)", "/ miss", "/ miss p99", "/ bare", "CPU / bare", "target"]
    table(headers, rows)


if __name__ == "__main__":
    main()
