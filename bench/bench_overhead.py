"""Happy-path cost of one synchronous call: LLMClient.chat_completion vs bare litellm.completion.

    python bench/bench_overhead.py [--quick] [--calls 300]

The client runs with the ledger on and rate limits on (1M RPM, 1G TPM, never hit)
and misses the cache (``cache=False``; one case instead stores every answer, with
caching on and unique prompts). Every case sends unique prompts to the same
simulator. The cases are interleaved: each step runs every case in a random order,
as a burst of 4 calls whose first is not recorded (it absorbs the work LiteLLM's
background thread still does for the previous case).
Wall-clock ms is what a caller waits; CPU ms is the calling thread's own work
(client + LiteLLM, not the simulator thread) and is steadier on a busy machine.
"""

from __future__ import annotations

from _common import (
    NATIVE_OLLAMA_MODEL,
    banner,
    bare_args,
    bare_completion,
    interleaved,
    interleaved_calls,
    load_litellm,
    median,
    messages,
    paired_median_diff,
    percentile,
    simulator,
    table,
    target_cell,
)

LIMITS = {
    "OPENAI_RATE_LIMIT_RPM": "1000000",
    "OPENAI_RATE_LIMIT_TPM": "1000000000",
    "OLLAMA_RATE_LIMIT_RPM": "1000000",
    "OLLAMA_RATE_LIMIT_TPM": "1000000000",
}
# (label, numerator case, denominator case, target on the median wall-clock ratio)
RATIOS = [
    ("client / bare, openai", "client openai", "bare openai", 1.10),
    ("client miss+store / bare, openai", "client openai, miss+store", "bare openai", 1.10),
    ("client / bare, ollama", "client ollama", "bare ollama", 1.15),
    ("client ollama / client openai", "client ollama", "client openai", 1.1),
    ("bare ollama / bare openai", "bare ollama", "bare openai", None),
    ("bare ollama_chat / bare openai", "bare ollama_chat (native route)", "bare openai", None),
]


def main() -> None:
    calls, settings = interleaved_calls(__doc__)
    banner(
        "bench_overhead: sync happy path, client vs bare LiteLLM",
        settings + "limits on (1M RPM, 1G TPM)",
    )
    with simulator(**LIMITS) as (sim, _tmp):
        litellm = load_litellm()
        from leadfactory.llm import LLMClient, LLMConfig

        client = LLMClient(LLMConfig(fallback_strategy="smart_fallback", enable_caching=True))

        def prompt(i: int) -> list[dict]:
            return messages(f"Say hello, call number {i}.")

        def ask(provider: str, cache: bool):
            return lambda i: client.chat_completion(
                prompt(i), model=provider, max_tokens=20, cache=cache
            )

        cases = {
            "client openai": ask("openai", cache=False),
            "bare openai": lambda i: bare_completion(sim, prompt(i), "openai"),
            "client openai, miss+store": ask("openai", cache=True),
            "client ollama": ask("ollama", cache=False),
            "bare ollama": lambda i: bare_completion(sim, prompt(i), "ollama"),
            # Reference: LiteLLM's native Ollama route (/api/chat), which the client avoids.
            "bare ollama_chat (native route)": lambda i: litellm.completion(
                **bare_args(sim, prompt(i), "ollama")
                | {"model": NATIVE_OLLAMA_MODEL, "api_base": sim.base_url("ollama")}
            ),
        }
        wall, cpu = interleaved(cases, calls)
        client.close()

    table(
        ["case", "median ms", "p99 ms", "CPU median ms"],
        [[n, median(wall[n]), percentile(wall[n], 99), median(cpu[n])] for n in cases],
    )
    print()
    rows = []
    for label, a, b, target in RATIOS:
        r_wall = median(wall[a]) / median(wall[b])
        rows.append(
            [
                label,
                r_wall,
                percentile(wall[a], 99) / percentile(wall[b], 99),
                median(cpu[a]) / median(cpu[b]),
                paired_median_diff(wall[a], wall[b]),
                paired_median_diff(cpu[a], cpu[b]),
                target_cell(r_wall, target) if target else "(reference)",
            ]
        )
    table(
        ["ratio", "median", "p99", "CPU", "added ms", "added CPU ms", "target (median)"],
        rows,
    )
    print("\n(added ms: median of per-call differences between calls of the same step)")


if __name__ == "__main__":
    main()
