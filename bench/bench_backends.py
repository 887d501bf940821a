"""The multi-host backends against the SQLite defaults: ledger throughput, client overhead.

    python bench/bench_backends.py [--quick] [--pairs 2000] [--calls 300] [--no-flush]

1. Ledger reserve + settle pairs per second, SQLite file and PostgreSQL side by side,
   with 1 process and with 4 processes (one thread each, each its own ledger handle),
   and 4 processes of 8 threads (PostgreSQL commits of concurrent writers share a disk
   flush; SQLite writers take turns). Target: >= 1,000 pairs/s with 4 processes on
   PostgreSQL. Then PostgreSQL's CPU per pair, client and server (a local server).
2. Per-call wall time of the client against the simulator with the PostgreSQL ledger,
   and with the PostgreSQL ledger + the Redis limiter (``LLM_REDIS_URL``, keys under a
   prefix of their own, deleted after), vs the SQLite ledger with in-process limits
   (interleaved, median of paired differences; wall time, and the calling thread's CPU
   beside it; and the mean, which spreads over every call the work done for a few, such
   as the writer thread's grouped settlements). Target: <= 1 ms of wall time added by
   PostgreSQL + Redis. Then this machine's loopback round trips (PostgreSQL ``SELECT
   1``, a durable commit, Redis ``PING``): the floor under those figures, to compare
   machines by.

``--no-flush`` runs PostgreSQL with ``synchronous_commit`` off for every commit (the
libpq option ``-csynchronous_commit=off`` in the URL), settlements included: the
figures of the durability trade-off docs/scaling.md describes, not the default.

PostgreSQL comes from ``LF_TEST_POSTGRES_URL`` (default: the development machines'
127.0.0.1:5432, database ``test``); the run works in a schema of its own, dropped after.
Redis comes from ``LF_TEST_REDIS_URL`` (default 127.0.0.1:6379, database 0).
"""

from __future__ import annotations

import multiprocessing
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import (  # noqa: E402
    banner,
    interleaved,
    median,
    messages,
    paired_median_diff,
    parse_args,
    simulator,
    table,
    target_cell,
)

from leadfactory.llm.ledger import Budget, CostLedger, Ledger  # noqa: E402
from tests.services import POSTGRES_URL, REDIS_URL  # noqa: E402

mean = statistics.fmean
BUDGET = Budget(max_cost_per_request=10.0, daily_limit=1e9, monthly_limit=1e9)


@contextmanager
def postgres_schema(no_flush: bool = False) -> Iterator[str]:
    import psycopg

    name = f"lf_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {name}")
    try:
        separator = "&" if "?" in POSTGRES_URL else "?"
        options = f"-csearch_path={name}" + (" -csynchronous_commit=off" if no_flush else "")
        yield f"{POSTGRES_URL}{separator}options={quote(options)}"
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {name} CASCADE")


def open_ledger(where: str) -> Ledger:
    if where.startswith("postgresql://"):
        from leadfactory.llm.ledger.postgres import PostgresLedger

        return PostgresLedger(where, max_connections=8)
    return CostLedger(where)


def pair(ledger: Ledger, i: int) -> None:
    reservation = ledger.reserve(
        request_id=f"b{i}", provider=("openai", "anthropic")[i % 2], model="m",
        estimated_usd=0.02, budget=BUDGET,
    )  # fmt: skip
    ledger.settle(reservation, outcome="success", cost_usd=0.015, prompt_tokens=100)


def _process(where: str, threads: int, pairs: int, barrier, results) -> None:
    with open_ledger(where) as ledger:
        pair(ledger, 0)  # schema, connection, warm caches
        barrier.wait()
        start = time.perf_counter()
        workers = [
            threading.Thread(target=lambda: [pair(ledger, i) for i in range(pairs)])
            for _ in range(threads)
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        results.put((start, time.perf_counter()))


def pairs_per_second(where: str, processes: int, threads: int, pairs: int) -> float:
    """Reserve + settle pairs per second over ``processes`` x ``threads`` writers."""
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(processes), context.Queue()
    procs = [
        context.Process(target=_process, args=(where, threads, pairs, barrier, results))
        for _ in range(processes)
    ]
    for proc in procs:
        proc.start()
    spans = [results.get(timeout=600) for _ in procs]
    for proc in procs:
        proc.join()
    elapsed = max(end for _, end in spans) - min(start for start, _ in spans)
    return processes * threads * pairs / elapsed


def ledger_throughput(pairs: int, no_flush: bool = False) -> None:
    shapes = [(1, 1), (4, 1), (4, 8)]
    rows = []
    with tempfile.TemporaryDirectory() as tmp, postgres_schema(no_flush) as url:
        for name, where in (("SQLite file", str(Path(tmp) / "ledger.db")), ("PostgreSQL", url)):
            for processes, threads in shapes:
                per_writer = max(pairs // (processes * threads), 20)
                rate = pairs_per_second(where, processes, threads, per_writer)
                target = "-"
                if name == "PostgreSQL" and (processes, threads) == (4, 1):
                    target = target_cell(rate, 1000, at_most=False)
                rows.append([name, f"{processes} x {threads}", rate, target])
        cpu = pair_cpu(url, pairs)
    table(["ledger", "processes x threads", "pairs/s", "target"], rows)
    if cpu is not None:
        client, server = cpu
        print(f"PostgreSQL 1 x 1, CPU ms per pair: client thread {client:.3f}, server {server:.3f}")


def pair_cpu(url: str, pairs: int) -> tuple[float, float] | None:
    """CPU ms per pair on one thread: the caller's (``time.thread_time``) and that of the
    server processes serving its connections (``/proc``; None where the server is not on
    this machine). Steadier than pairs/s on a shared machine: it ignores waiting."""
    ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

    def server_seconds(pids: set[int]) -> float:
        total = 0
        for pid in pids:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        return total / ticks

    with open_ledger(url) as ledger:
        for i in range(50):
            pair(ledger, i)
        pids = {ledger._run(lambda conn: conn.info.backend_pid) for _ in range(20)}
        try:
            server = server_seconds(pids)
        except OSError:
            return None
        client = time.thread_time()
        for i in range(pairs):
            pair(ledger, i)
        client = time.thread_time() - client
        server = server_seconds(pids) - server
    return client * 1000 / pairs, server * 1000 / pairs


def round_trips(url: str, times: int = 500) -> str:
    """This machine's loopback round trips, the floor under every figure above and below
    (medians, ms): PostgreSQL ``SELECT 1``, a durable ``INSERT`` commit, Redis ``PING``."""
    import psycopg
    import redis

    def timed(action: Callable[[], object]) -> float:
        samples = []
        for _ in range(times):
            start = time.perf_counter()
            action()
            samples.append((time.perf_counter() - start) * 1000)
        return median(samples)

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE lf_round_trip (n int)")
        select = timed(lambda: conn.execute("SELECT 1").fetchone())
        commit = timed(lambda: conn.execute("INSERT INTO lf_round_trip VALUES (1)"))
        conn.execute("DROP TABLE lf_round_trip")
    server = redis.Redis.from_url(REDIS_URL)
    ping = timed(server.ping)
    server.close()
    return (
        f"loopback round trips, median ms: PostgreSQL SELECT 1 {select:.3f}, durable"
        f" INSERT commit {commit:.3f}; Redis PING {ping:.3f}"
    )


@contextmanager
def redis_prefix() -> Iterator[str]:
    """A key prefix of this run's own on ``REDIS_URL``; its keys are deleted after."""
    import redis

    prefix = f"lf-bench-{uuid.uuid4().hex[:8]}:"
    try:
        yield prefix
    finally:
        server = redis.Redis.from_url(REDIS_URL)
        for key in server.scan_iter(match=f"{prefix}*"):
            server.delete(key)
        server.close()


def client_overhead(calls: int, no_flush: bool = False) -> None:
    from leadfactory.llm import LLMClient, LLMConfig

    with simulator() as (sim, tmp), postgres_schema(no_flush) as url, redis_prefix() as prefix:
        quiet = {"enable_caching": False, "log_requests": False}
        shared = {"ledger_url": url, "redis_url": REDIS_URL, "redis_key_prefix": prefix}
        clients = {
            "SQLite ledger": LLMClient(LLMConfig(**quiet)),
            "PostgreSQL ledger": LLMClient(LLMConfig(**quiet, ledger_url=url)),
            "PostgreSQL ledger + Redis limiter": LLMClient(LLMConfig(**quiet, **shared)),
        }

        def case(client: LLMClient) -> Callable[[int], object]:
            return lambda i: client.chat_completion(messages(f"hello {i}"), model="openai")

        wall, cpu = interleaved({name: case(c) for name, c in clients.items()}, calls)
        for client in clients.values():
            client.close()
    rows: list[list[object]] = [
        [name, median(times), median(cpu[name]), mean(times), "-"] for name, times in wall.items()
    ]
    for name, target in (("PostgreSQL ledger", None), ("PostgreSQL ledger + Redis limiter", 1.0)):
        added = paired_median_diff(wall[name], wall["SQLite ledger"])
        added_cpu = paired_median_diff(cpu[name], cpu["SQLite ledger"])
        added_mean = mean(wall[name]) - mean(wall["SQLite ledger"])
        cell = target_cell(added, target, unit=" ms") if target else "-"
        rows.append([f"added by {name.lower()} (paired)", added, added_cpu, added_mean, cell])
    table(["client call, sync", "median ms", "caller CPU ms", "mean ms", "target"], rows)
    with postgres_schema(no_flush) as url:
        print(round_trips(url))


def main() -> None:
    args = parse_args(
        __doc__,
        pairs=(int, 2000, "reserve + settle pairs per configuration"),
        calls=(int, 300, "timed client calls per ledger"),
        no_flush=(bool, False, "PostgreSQL commits without waiting for the disk (trade-off)"),
    )
    pairs, calls = (400, 40) if args.quick else (args.pairs, args.calls)
    settings = f"{pairs} pairs per configuration; {calls} client calls each"
    if args.no_flush:
        settings += "; PostgreSQL with synchronous_commit=off (settlements not durable)"
    banner("ledger backends", settings)
    ledger_throughput(pairs, args.no_flush)
    print()
    client_overhead(calls, args.no_flush)


if __name__ == "__main__":
    main()
