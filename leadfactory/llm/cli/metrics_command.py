"""``leadfactory-llm metrics``: a Prometheus endpoint fed from the ledger.

Every process that writes the ledger is counted, with no telemetry turned on in any of
them: attempts, errors, tokens, dollars, latencies and cache hits from the rows as they
are settled (:class:`~leadfactory.llm.telemetry.ledger_feed.LedgerFeed`), the budget
spent per period, and, when ``LLM_REDIS_URL`` shares them, the providers' cooldowns and
Retry-After pauses. Same metric names as the in-process telemetry (observability.md).
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from .output import CommandError

__all__ = ["command_metrics"]


class _Refresh:
    """A collector that reads the ledger's new rows before the others are collected."""

    def __init__(self) -> None:
        self.feed: Any = None

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> list[Any]:
        if self.feed is not None:
            self.feed.read()
        return []


def command_metrics(args: argparse.Namespace) -> int:
    try:
        from prometheus_client import CollectorRegistry, generate_latest, start_http_server
    except ImportError:
        raise CommandError(
            "the metrics command needs prometheus-client, which is not installed",
            "pip install 'leadfactory-llm[prometheus]'",
        ) from None
    from ..client import LLMClient
    from ..telemetry import Telemetry
    from ..telemetry.instruments import MetricObserver
    from ..telemetry.ledger_feed import LedgerFeed
    from ..telemetry.sinks import PrometheusSink
    from .client_commands import load_config
    from .ledger_backend import apply_ledger_option, ledger_line

    config = apply_ledger_option(load_config(), args)
    described, problem = ledger_line(config)
    if problem is not None:
        raise CommandError(problem, "start the server, or point --ledger / LLM_LEDGER_URL at it")
    client = LLMClient(config, telemetry=Telemetry())  # this process's own calls: none
    registry = CollectorRegistry()
    refresh = _Refresh()
    registry.register(refresh)  # first: the rows are read before the counters are
    sink = PrometheusSink(registry)
    sink.gauges.watch(client, providers=config.redis_url is not None)
    refresh.feed = LedgerFeed(client.ledger, MetricObserver(sink))
    if args.once:
        sys.stdout.write(generate_latest(registry).decode())
        return 0
    refresh.feed.read()  # the ledger so far, before the first scrape
    server, _thread = start_http_server(args.port, addr=args.host, registry=registry)
    port = server.server_port
    print(f"serving http://{args.host}:{port}/metrics from the {described}", file=sys.stderr)
    print("Ctrl-C stops", file=sys.stderr, flush=True)
    try:
        while True:
            time.sleep(3600)
    finally:
        server.shutdown()
        client.close()
