"""Cost ledger speed: reserve + settle on a ledger holding 100k rows over 60 days.

    python bench/bench_ledger.py [--rows 100000] [--calls 5000]

Prints the latency of one reserve + settle pair (median and p99, one process, one
thread) and the throughput in pairs per second for one process, four threads in one
process, and four processes sharing the file. There is no LiteLLM counterpart to
compare with, so the figures are absolute.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from leadfactory.llm.ledger import Budget, CostLedger, utc_iso  # noqa: E402

BUDGET = Budget(max_cost_per_request=10.0, daily_limit=1e9, monthly_limit=1e9)
PROVIDERS = ("openai", "anthropic", "ollama")


def prefill(path: Path, rows: int, days: int = 60) -> None:
    """Write ``rows`` finished calls spread over the last ``days`` days."""
    rng = random.Random(7)
    now = datetime.now(UTC)
    step = timedelta(days=days) / rows
    CostLedger(path).close()  # creates the schema
    batch = []
    for i in range(rows):
        provider = rng.choice(PROVIDERS)
        outcome = rng.choices(("success", "error", "cache_hit"), (90, 5, 5))[0]
        cost = 0.0 if provider == "ollama" or outcome != "success" else rng.uniform(0.001, 0.05)
        ts = utc_iso(now - timedelta(days=days) + step * i)
        batch.append((ts, f"r{i}", provider, "m", outcome, 100, 50, 150, cost, 12.5))
    with sqlite3.connect(path) as conn:  # triggers keep the running totals in step
        conn.executemany(
            "INSERT INTO calls (ts, request_id, provider, model, outcome, prompt_tokens,"
            " completion_tokens, total_tokens, cost_usd, latency_ms) VALUES (?,?,?,?,?,?,?,?,?,?)",
            batch,
        )
    conn.close()


def pair(ledger: CostLedger, i: int) -> None:
    provider = PROVIDERS[i % 2]
    reservation = ledger.reserve(
        request_id=f"b{i}", provider=provider, model="m", estimated_usd=0.02, budget=BUDGET
    )
    ledger.settle(
        reservation, outcome="success", cost_usd=0.015, prompt_tokens=100, completion_tokens=50
    )


def latencies(path: Path, calls: int) -> list[float]:
    with CostLedger(path) as ledger:
        for i in range(200):  # warm up
            pair(ledger, i)
        times = []
        for i in range(calls):
            start = time.perf_counter_ns()
            pair(ledger, i)
            times.append((time.perf_counter_ns() - start) / 1000)
    return times


def threaded(path: Path, threads: int, calls: int) -> float:
    """Pairs per second with ``threads`` threads sharing one ledger."""
    with CostLedger(path) as ledger:
        barrier = threading.Barrier(threads + 1)

        def run() -> None:
            barrier.wait()
            for i in range(calls):
                pair(ledger, i)

        workers = [threading.Thread(target=run) for _ in range(threads)]
        for worker in workers:
            worker.start()
        barrier.wait()
        start = time.perf_counter()
        for worker in workers:
            worker.join()
        return threads * calls / (time.perf_counter() - start)


def _process(path: str, calls: int, barrier, results) -> None:
    with CostLedger(path) as ledger:
        pair(ledger, 0)
        barrier.wait()
        start = time.perf_counter()
        for i in range(calls):
            pair(ledger, i)
        results.put((start, time.perf_counter()))


def processes(path: Path, count: int, calls: int) -> float:
    """Pairs per second with ``count`` processes, each with its own ledger."""
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(count), context.Queue()
    procs = [
        context.Process(target=_process, args=(str(path), calls, barrier, results))
        for _ in range(count)
    ]
    for proc in procs:
        proc.start()
    spans = [results.get(timeout=300) for _ in procs]
    for proc in procs:
        proc.join()
    return count * calls / (max(end for _, end in spans) - min(start for start, _ in spans))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--calls", type=int, default=5000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ledger.db"
        start = time.perf_counter()
        prefill(path, args.rows)
        print(f"prefilled {args.rows:,} rows in {time.perf_counter() - start:.1f}s ({path.name})")
        start = time.perf_counter()
        CostLedger(path).close()
        opened = (time.perf_counter() - start) * 1000
        times = latencies(path, args.calls)
        one = len(times) / (sum(times) / 1e6)
        four_threads = threaded(path, 4, args.calls // 4)
        four_procs = processes(path, 4, args.calls // 4)
        size = path.stat().st_size / 1e6
    print(
        f"\ncpus: {os.cpu_count()}, ledger file: {size:.1f} MB, open (schema current): "
        f"{opened:.2f} ms"
    )
    print(f"{'reserve + settle':<34}{'value':>12}")
    print(f"{'latency median (us)':<34}{statistics.median(times):>12.0f}")
    print(f"{'latency p99 (us)':<34}{statistics.quantiles(times, n=100)[98]:>12.0f}")
    print(f"{'throughput, 1 process (pairs/s)':<34}{one:>12,.0f}")
    print(f"{'throughput, 4 threads (pairs/s)':<34}{four_threads:>12,.0f}")
    print(f"{'throughput, 4 processes (pairs/s)':<34}{four_procs:>12,.0f}")


if __name__ == "__main__":
    main()
