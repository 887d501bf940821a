"""Describe many companies concurrently, with a progress bar, stopping at a spend cap.

    python examples/batch_async.py [--items 50] [--concurrency 8] [--max-spend 0.01]
                                   [--run NAME]

One call, ``await client.amap(...)``, does what a hand-written loop would: at most
``--concurrency`` requests in flight, a tqdm bar on a terminal, no new request once the
answers cost ``--max-spend`` dollars (the ones in flight still finish), and each
failure kept with its item instead of stopping the others. With ``--run NAME`` the
answers are kept beside the ledger: run the same command again (after a crash, or
Ctrl-C) and the companies already described cost nothing. For a hard limit shared by
every process, set a budget instead (``LLM_DAILY_COST_LIMIT``): the ledger refuses a
request before it is sent, and the batch stops when no free provider can serve.
See docs/batches.md.

With no API keys and no Ollama server, it starts the bundled simulator and a scratch
ledger, so it runs offline.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections import Counter

from leadfactory.llm import LLMClient, LLMConfig
from leadfactory.llm.batch import BatchResults
from leadfactory.llm.simulator import offline_environment

NAMES = ["Acme", "Globex", "Initech", "Umbrella", "Hooli", "Vandelay", "Wonka", "Tyrell"]
TRADES = ["Anvils", "Logistics", "Software", "Foods", "Robotics", "Shipping", "Textiles"]


async def describe_all(client: LLMClient, companies: list[str], args) -> BatchResults:
    requests = [
        {
            "id": company,
            "messages": [{"role": "user", "content": f"Describe {company} in one sentence."}],
            "max_tokens": 60,
            "caller": "batch_async",
        }
        for company in companies
    ]
    return await client.amap(
        requests, concurrency=args.concurrency, stop_at_spend=args.max_spend, run=args.run
    )


def summary(results: BatchResults, client: LLMClient, max_spend: float) -> str:
    counts = results.counts()
    providers = Counter(
        item.response["provider"] for item in results.items if item.status == "answered"
    )
    lines = [
        f"{counts['answered']} done, {counts['resumed']} from an earlier run,"
        f" {counts['failed']} failed, {counts['not_run']} not run, of {len(results)}",
        f"spent ${results.spent:.6f} (cap ${max_spend:.4f})"
        + (f"; stopped: {results.stopped}" if results.stopped else ""),
        "answered by: " + (", ".join(f"{p} {n}" for p, n in providers.most_common()) or "-"),
    ]
    for item in results.items[:3]:
        text = item.response["choices"][0]["message"]["content"] if item.response else item.error
        lines.append(f"  {item.id}: {text}")
    ledger = client.ledger
    if ledger.path is not None:  # None when LLM_COST_TRACKING=false
        lines.append(f"ledger {ledger.path}: ${ledger.spend():.6f} spent today, all callers")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=50, help="companies to describe")
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight")
    parser.add_argument("--max-spend", type=float, default=0.01, help="stop at this many USD")
    parser.add_argument("--run", help="keep the answers under this name, to resume")
    parser.add_argument(
        "--strategy", default="quality_optimized", help="fallback strategy (paid first)"
    )
    args = parser.parse_args(argv)
    companies = [f"{name} {trade}" for trade in TRADES for name in NAMES][: args.items]

    with offline_environment(if_unconfigured=True) as sim:
        if sim is not None:
            print("No API keys and no Ollama server: using the bundled simulator.")
        with LLMClient(LLMConfig(fallback_strategy=args.strategy)) as client:
            results = asyncio.run(describe_all(client, companies, args))
            print(summary(results, client, args.max_spend))
    counts = results.counts()
    return 0 if counts["answered"] + counts["resumed"] else 1


if __name__ == "__main__":
    sys.exit(main())
