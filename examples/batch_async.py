"""Describe many companies concurrently, with a progress bar, stopping at a spend cap.

    python examples/batch_async.py [--items 50] [--concurrency 8] [--max-spend 0.01]

Up to ``--concurrency`` requests are in flight at once (an asyncio.Semaphore). Once the
costs of the answers received add up to ``--max-spend`` dollars, no new request starts;
the requests already in flight (at most ``--concurrency``) still finish, so the total may
pass the cap by that much. For a hard limit shared by every process, set a budget
instead (``LLM_DAILY_COST_LIMIT``): the ledger refuses a request before it is sent.

With no API keys and no Ollama server, it starts the bundled simulator and a scratch
ledger, so it runs offline.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections import Counter
from typing import Any

from tqdm import tqdm

from leadfactory.llm import LLMClient, LLMConfig, LLMError
from leadfactory.llm.simulator import offline_environment

NAMES = ["Acme", "Globex", "Initech", "Umbrella", "Hooli", "Vandelay", "Wonka", "Tyrell"]
TRADES = ["Anvils", "Logistics", "Software", "Foods", "Robotics", "Shipping", "Textiles"]


class Batch:
    """One run: the client, the cap, and what has been spent so far."""

    def __init__(self, client: LLMClient, concurrency: int, max_spend: float) -> None:
        self.client = client
        self.limit = asyncio.Semaphore(concurrency)
        self.max_spend = max_spend
        self.spent = 0.0  # sum of response["cost"]; tasks share one event loop, so no lock

    async def describe(self, company: str, bar: tqdm) -> dict[str, Any]:
        async with self.limit:
            if self.spent >= self.max_spend:
                result = {"company": company, "status": "skipped"}
            else:
                result = await self._ask(company)
        bar.update()
        bar.set_postfix(spent=f"${self.spent:.4f}")
        return result

    async def _ask(self, company: str) -> dict[str, Any]:
        messages = [{"role": "user", "content": f"Describe {company} in one sentence."}]
        try:
            response = await self.client.achat_completion(
                messages, max_tokens=60, caller="batch_async"
            )
        except LLMError as error:
            return {"company": company, "status": "failed", "error": type(error).__name__}
        self.spent += response["cost"]
        return {
            "company": company,
            "status": "done",
            "provider": response["provider"],
            "cost": response["cost"],
            "text": response["choices"][0]["message"]["content"],
        }

    async def run(self, companies: list[str]) -> list[dict[str, Any]]:
        with tqdm(total=len(companies), unit="company", file=sys.stderr) as bar:
            return await asyncio.gather(*(self.describe(c, bar) for c in companies))


def summary(results: list[dict[str, Any]], batch: Batch) -> str:
    status = Counter(r["status"] for r in results)
    providers = Counter(r["provider"] for r in results if r["status"] == "done")
    lines = [
        f"{status['done']} done, {status['failed']} failed, {status['skipped']} skipped"
        f" of {len(results)}",
        f"spent ${batch.spent:.6f} (cap ${batch.max_spend:.4f})"
        + ("; the cap stopped the batch" if status["skipped"] else ""),
        "answered by: " + (", ".join(f"{p} {n}" for p, n in providers.most_common()) or "-"),
    ]
    ledger = batch.client.ledger
    if ledger.path is not None:  # None when LLM_COST_TRACKING=false
        lines.append(f"ledger {ledger.path}: ${ledger.spend():.6f} spent today, all callers")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=50, help="companies to describe")
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight")
    parser.add_argument("--max-spend", type=float, default=0.01, help="stop at this many USD")
    parser.add_argument(
        "--strategy", default="quality_optimized", help="fallback strategy (paid first)"
    )
    args = parser.parse_args(argv)
    companies = [f"{name} {trade}" for trade in TRADES for name in NAMES][: args.items]

    with offline_environment(if_unconfigured=True) as sim:
        if sim is not None:
            print("No API keys and no Ollama server: using the bundled simulator.")
        with LLMClient(LLMConfig(fallback_strategy=args.strategy)) as client:
            batch = Batch(client, args.concurrency, args.max_spend)
            results = asyncio.run(batch.run(companies))
            print(summary(results, batch))
    return 0 if any(r["status"] == "done" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
