"""Failover cost: the first provider (Ollama) refuses connections, the second (OpenAI) answers.

    python bench/bench_failover.py [--quick] [--trials 15] [--calls 10]

smart_fallback puts the free Ollama first. With Ollama's port closed, each trial
builds a fresh client (fresh health state), warms it with calls pinned to OpenAI,
then makes ``--calls`` unpinned calls. The added latency of a call is its time
minus the median of healthy calls (pinned to OpenAI, same client, interleaved).
Network attempts to the dead provider are counted from each response's
``attempts`` list: "error" means a connection was tried, "skipped" means the
breaker kept the call away (a refused connection never reaches the simulator,
so its request_count stays 0). Scenario A sets OLLAMA_MAX_RETRIES=0; scenario B
keeps the default retries (2, with backoff) and runs fewer trials.
"""

from __future__ import annotations

import os
import time

from _common import (
    banner,
    bare_completion,
    load_litellm,
    median,
    messages,
    parse_args,
    simulator,
    table,
    time_ms,
)

FIRST_CALL_TARGET_MS = 15.0


def trial(calls: int, *, expect: str | None = "openai") -> dict:
    """One fresh client: healthy baseline, then ``calls`` calls with Ollama refusing."""
    from leadfactory.llm import LLMClient, LLMConfig

    client = LLMClient(LLMConfig(fallback_strategy="smart_fallback", enable_caching=False))

    def healthy() -> float:
        return time_ms(
            lambda: client.chat_completion(messages(), model="openai", max_tokens=20, cache=False)
        )

    for _ in range(3):  # ledger file, OpenAI connection
        healthy()
    baseline, times, errors, skipped, opened_at = [], [], [], [], None
    for k in range(calls):
        baseline.append(healthy())
        start = time.perf_counter()
        response = client.chat_completion(messages(), max_tokens=20, cache=False)
        times.append((time.perf_counter() - start) * 1000.0)
        if expect is not None and response["provider"] != expect:
            raise SystemExit(f"unexpected answer from {response['provider']}: {response}")
        dead = [a for a in response["attempts"] if a["provider"] == "ollama"]
        errors.append(sum(a["outcome"] == "error" for a in dead))
        skipped.append(sum(a["outcome"] == "skipped" for a in dead))
        state = client.get_provider_status()["ollama"]["health"]
        if opened_at is None and state == "cooling_down":
            opened_at = k + 1  # calls after this one find the breaker open
    baseline.append(healthy())
    client.close()
    h = median(baseline)
    later = opened_at if opened_at is not None else calls
    return {
        "healthy": h,
        "first": times[0] - h,
        "before_open": [t - h for t in times[1:later]],
        "after_open": [t - h for t in times[later:]],
        "errors_after_open": sum(errors[later:]),
        "skipped_after_open": sum(skipped[later:]),
        "opened_at": opened_at,
    }


def scenario(sim, label: str, retries: str | None, trials: int, calls: int) -> list:
    if retries is None:
        os.environ.pop("OLLAMA_MAX_RETRIES", None)
    else:
        os.environ["OLLAMA_MAX_RETRIES"] = retries
    results = [trial(calls) for _ in range(trials)]
    first = median([r["first"] for r in results])
    before = [x for r in results for x in r["before_open"]]
    after = [x for r in results for x in r["after_open"]]
    opened = sorted({r["opened_at"] for r in results}, key=str)
    return [
        [f"{label}: healthy call (OpenAI pinned)", median([r["healthy"] for r in results]), "-"],
        [
            f"{label}: first call, added",
            first,
            f"<= {FIRST_CALL_TARGET_MS:g} ms  {'ok' if first <= FIRST_CALL_TARGET_MS else 'MISS'}",
        ],
        [f"{label}: calls before the breaker opens, added", median(before), "-"],
        [f"{label}: calls after it opened, added", median(after), "-"],
        [f"{label}: breaker opened after call #", ", ".join(map(str, opened)), "-"],
        [
            f"{label}: connection attempts to Ollama after it opened",
            sum(r["errors_after_open"] for r in results),
            "0  " + ("ok" if all(r["errors_after_open"] == 0 for r in results) else "MISS"),
        ],
        [
            f"{label}: skipped (no attempt) after it opened",
            sum(r["skipped_after_open"] for r in results),
            "-",
        ],
    ]


def bare_refused(sim, calls: int = 20) -> float:
    """Median ms for bare litellm.completion to the refusing Ollama port to raise."""

    def call() -> None:
        try:
            bare_completion(sim, messages(), "ollama")
        except Exception:  # the connection error is the point
            return
        raise SystemExit("the refusing port answered")

    for _ in range(3):
        call()
    return median([time_ms(call) for _ in range(calls)])


def main() -> None:
    args = parse_args(
        __doc__,
        trials=(int, 15, "fresh clients in scenario A (scenario B runs a third as many)"),
        calls=(int, 10, "calls per trial with the first provider refusing"),
    )
    trials = 3 if args.quick else args.trials
    trials_b = max(1, trials // 3)
    banner(
        "bench_failover: first provider refusing connections, smart_fallback",
        f"A: {trials} trials, B: {trials_b} trials; {args.calls} failover calls per trial, "
        "each after a healthy call; cooldown after LLM_COOLDOWN_FAILURES (default 3) failures",
    )
    with simulator(ANTHROPIC_ENABLED="false") as (sim, _tmp):  # order: ollama, openai
        load_litellm()
        from leadfactory.llm import LLMClient  # noqa: F401  (import cost outside the timings)

        # Warm the process: every route once while healthy, then one unmeasured trial.
        os.environ["OLLAMA_MAX_RETRIES"] = "0"
        trial(1, expect="ollama")
        sim.set_fault("ollama", "refuse")
        trial(args.calls)
        rows_a = scenario(sim, "A retries=0", "0", trials, args.calls)
        rows_b = scenario(sim, "B retries=default", None, trials_b, args.calls)
        refused = bare_refused(sim)
        rows = [*rows_a, *rows_b]
        rows.append(["reference: bare LiteLLM call to the refused port", refused, "-"])
        for label, part in (("A", rows_a), ("B", rows_b)):  # part[1]: the first call's row
            beyond = part[1][1] - refused
            rows.append([f"{label}: first call added beyond that bare call", beyond, "-"])
        reached = sim.request_count("ollama")
    table(["figure", "ms / count", "target"], rows)
    print(f"\nrequests that reached the refusing Ollama port (simulator count): {reached}")


if __name__ == "__main__":
    main()
