"""Peak memory: 1,000 calls through LLMClient vs the same 1,000 calls with bare LiteLLM.

    python bench/bench_memory.py [--quick] [--calls 1000] [--rounds 2]

Each figure comes from a fresh subprocess that starts the simulator, makes the
calls (unique prompts, max_tokens=20) and reports its peak RSS (``ru_maxrss``),
also taken after the first 10 calls to show growth. Modes: bare LiteLLM; the
client with the ledger on and ``cache=False``; and (once, for information) the
client with caching on, storing all 1,000 answers. Bare and client alternate.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys

from _common import banner, median, parse_args, table, target_cell

MODES = ("bare", "client", "client, cache on")
EARLY = 10


def child(mode: str, calls: int) -> None:
    """Run in the subprocess: make the calls, print peak RSS in MiB as JSON."""
    from _common import CLIENT_MODELS, bare_completion, load_litellm, messages, simulator

    def peak() -> float:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux

    with simulator() as (sim, _tmp):
        load_litellm()
        if mode == "bare":
            call = lambda i: bare_completion(sim, messages(f"Say hello, call {i}."))  # noqa: E731
        else:
            from leadfactory.llm import LLMClient, LLMConfig

            client = LLMClient(LLMConfig(enable_caching=mode != "client"))
            cache = mode != "client"
            call = lambda i: client.chat_completion(  # noqa: E731
                messages(f"Say hello, call {i}."),
                model=CLIENT_MODELS["openai"],
                max_tokens=20,
                cache=cache,
            )
        for i in range(EARLY):
            call(i)
        early = peak()
        for i in range(EARLY, calls):
            call(i)
        print(json.dumps({"early": early, "peak": peak()}))


def measure(mode: str, calls: int) -> dict:
    done = subprocess.run(
        [sys.executable, __file__, "--child", mode, "--calls", str(calls)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"child {mode!r} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    args = parse_args(
        __doc__,
        calls=(int, 1000, "calls per process"),
        rounds=(int, 2, "processes per mode for bare and client"),
        child=(str, None, "internal: run one measurement"),
    )
    if args.child:
        child(args.child, args.calls)
        return
    calls, rounds = (200, 1) if args.quick else (args.calls, args.rounds)
    banner(
        "bench_memory: peak RSS after many calls, client vs bare LiteLLM",
        f"{calls} calls per fresh process; {rounds} processes each for bare and client "
        "(alternating), 1 for client with cache on; simulator in the same process",
    )
    results: dict[str, list[dict]] = {mode: [] for mode in MODES}
    for r in range(rounds):
        for mode in ("bare", "client") if r % 2 == 0 else ("client", "bare"):
            results[mode].append(measure(mode, calls))
    results["client, cache on"].append(measure("client, cache on", calls))

    summary = {
        mode: (median([x["early"] for x in runs]), median([x["peak"] for x in runs]))
        for mode, runs in results.items()
    }
    table(
        ["process", f"peak MiB after {EARLY} calls", f"peak MiB after {calls}", "growth MiB"],
        [[mode, early, peak, peak - early] for mode, (early, peak) in summary.items()],
    )
    ratio = summary["client"][1] / summary["bare"][1]
    print()
    table(
        ["ratio (peak RSS)", "value", "target"],
        [
            ["client / bare", ratio, target_cell(ratio, 1.1)],
            ["client, cache on / bare", summary["client, cache on"][1] / summary["bare"][1], "-"],
        ],
    )


if __name__ == "__main__":
    main()
