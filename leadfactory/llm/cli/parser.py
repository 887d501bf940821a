"""The argument parser: every command, its options, its --help text and examples."""

from __future__ import annotations

import argparse
import sys
from typing import Any, NoReturn

from .. import __version__
from .batch_command import command_batch
from .client_commands import command_chat, command_config_check, command_status
from .ledger_commands import _GROUP_COLUMNS, command_costs, command_path
from .metrics_command import command_metrics
from .output import EXIT_USAGE, PROG, report


class Parser(argparse.ArgumentParser):
    """argparse, with usage errors as one line and a hint instead of the whole usage."""

    def error(self, message: str) -> NoReturn:
        report(message, f"`{self.prog} --help` lists the options", prog=self.prog)
        sys.exit(EXIT_USAGE)


def _command(
    commands: Any, name: str, summary: str, description: str, examples: str
) -> argparse.ArgumentParser:
    """A subcommand whose --help says what it does, its options, and examples."""
    return commands.add_parser(
        name,
        help=summary,
        description=description,
        epilog="examples:\n" + "\n".join(f"  {line}" for line in examples.strip().splitlines()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def build_parser() -> Parser:
    parser = Parser(
        prog=PROG,
        description="Call LLM providers with fallback, and inspect the cost ledger.",
        epilog="Configuration comes from the environment and ./.env (OPENAI_API_KEY,\n"
        "ANTHROPIC_API_KEY, OLLAMA_HOST, LLM_*). The ledger is at LLM_LEDGER_PATH,\n"
        f"or where `{PROG} path` says.\n"
        f"`{PROG} COMMAND --help` explains each command.\n\n"
        "examples:\n"
        f'  {PROG} chat "What is the capital of France?"\n'
        f"  {PROG} status\n"
        f"  {PROG} costs --by provider --since 7d",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    chat = _command(
        commands,
        "chat",
        "ask one question (calls a provider)",
        "Send one prompt through the fallback chain and print the answer on stdout as it\n"
        "arrives (--no-stream: once it is whole).\n"
        "Provider, model, tokens, cost and latency go to stderr. The call is written\n"
        "to the ledger with caller 'cli'.",
        f"""
{PROG} chat "What is the capital of France?"
{PROG} chat --model openai/gpt-4o-mini --max-tokens 50 "Name three rivers"
echo "Summarise: Acme Corp makes anvils." | {PROG} chat --strategy quality_optimized
""",
    )
    chat.add_argument("prompt", nargs="*", help="the prompt (read from stdin when omitted)")
    chat.add_argument("--system", metavar="TEXT", help="a system message to send first")
    chat.add_argument(
        "--model", metavar="M", help="a provider (openai), provider/model, or a model name"
    )
    chat.add_argument(
        "--temperature", type=float, metavar="T", help="0 to 2 (default LLM_DEFAULT_TEMPERATURE)"
    )
    chat.add_argument(
        "--max-tokens", type=int, metavar="N", help="completion limit (LLM_DEFAULT_MAX_TOKENS)"
    )
    chat.add_argument(
        "--strategy",
        metavar="S",
        help="smart_fallback, cost_optimized, quality_optimized, round_robin or fail_fast "
        "(default LLM_FALLBACK_STRATEGY)",
    )
    chat.add_argument("--no-cache", action="store_true", help="skip the response cache")
    chat.add_argument(
        "--no-stream", action="store_true", help="wait for the whole answer, then print it"
    )
    chat.add_argument("--json", action="store_true", help="print the whole response as JSON")
    chat.set_defaults(handler=command_chat)

    batch = _command(
        commands,
        "batch",
        "run a JSONL file of requests (calls providers), resumable",
        'Answer every request of INPUT.jsonl (one JSON object a line: {"id": ...,\n'
        '"messages": [...]} or {"id": ..., "prompt": "..."}) and write one line per\n'
        "item to OUTPUT.jsonl: id, content, provider, cost, cached, error. Bad lines are\n"
        "reported by number and skipped. Answers are kept beside the ledger under the\n"
        "run's name (default: the output file's path): running the same command again\n"
        "resumes, asking no provider for items already answered. A progress bar shows\n"
        "on a terminal; Ctrl-C stops new items and writes what finished.",
        f"""
{PROG} batch leads.jsonl --out answers.jsonl
{PROG} batch leads.jsonl --out answers.jsonl --concurrency 20 --stop-at-spend 5
{PROG} batch leads.jsonl --out answers.jsonl --run leads-2026-12-02
""",
    )
    batch.add_argument("input", metavar="INPUT.jsonl", help="one request per line")
    batch.add_argument("--out", required=True, metavar="OUTPUT.jsonl", help="where answers go")
    batch.add_argument(
        "--concurrency", type=int, default=8, metavar="N", help="requests in flight (8)"
    )
    batch.add_argument(
        "--run", metavar="NAME", help="the run's name, to resume (default: from --out)"
    )
    batch.add_argument(
        "--stop-at-spend",
        type=float,
        metavar="USD",
        help="start no new item once this run's answers cost this many dollars",
    )
    batch.set_defaults(handler=command_batch)

    status = _command(
        commands,
        "status",
        "providers: available or why not, spend today, limits",
        "One line per configured provider: whether the next call could use it (and\n"
        "why not), its model, priority, price per 1k tokens, spend today and this\n"
        "month, requests and errors today, and its rate limits. Checks the\n"
        "configuration and the ledger's budgets; calls no provider.\n"
        "Exit status 1 when no provider can take a call.",
        f"""
{PROG} status
{PROG} status --json
""",
    )
    status.add_argument("--json", action="store_true", help="print every field as JSON")
    _ledger_option(status)
    status.set_defaults(handler=command_status)

    costs = _command(
        commands,
        "costs",
        "spend from the ledger, by day, month, provider, model or caller",
        "Sum the ledger: calls, errors, cache hits, the tokens billed (uncached input,\n"
        "cache reads, cache writes, output), dollars spent and dollars the cache\n"
        "saved, as an aligned table (or JSON). Opens the ledger read-only\n"
        "and never calls a provider, so it is safe while a pipeline runs.",
        f"""
{PROG} costs
{PROG} costs --by provider --since 7d
{PROG} costs --by model --since today --json
{PROG} costs --by caller --since 7d
{PROG} costs --ledger /path/to/ledger.db --by month
{PROG} costs --ledger postgresql://llm@db.internal/leadfactory --by provider
""",
    )
    costs.add_argument(
        "--by", choices=list(_GROUP_COLUMNS), default="day", help="group rows by (day)"
    )
    costs.add_argument(
        "--since",
        metavar="WHEN",
        help="only rows since WHEN: 7d, 24h, 30m, today, or an ISO date/time (UTC)",
    )
    _ledger_option(costs)
    costs.add_argument("--json", action="store_true", help="print a JSON list instead")
    costs.set_defaults(handler=command_costs)

    path = _command(
        commands,
        "path",
        "print the ledger file's path",
        "Print where the ledger is: LLM_LEDGER_PATH when set, else the default\n"
        "location in your data folder. The file may not exist until a first call.",
        f"""
{PROG} path
sqlite-utils tables "$({PROG} path)"
""",
    )
    path.set_defaults(handler=command_path)
    _metrics_command(commands)

    config = _command(
        commands,
        "config",
        "configuration commands (check)",
        "Configuration commands. The only one so far is `check`.",
        f"{PROG} config check",
    )
    config_commands = config.add_subparsers(dest="config_command", metavar="SUBCOMMAND")
    check = _command(
        config_commands,
        "check",
        "list configuration problems (exit 1 if any)",
        "Read the configuration as the client would (environment, then ./.env), print\n"
        "the strategy and the order it would try, then `configuration OK` or the list\n"
        "of problems. Exit status 1 when there are any.",
        f"""
{PROG} config check
LLM_FALLBACK_STRATEGY=cost_optimized {PROG} config check
""",
    )
    _ledger_option(check)
    check.set_defaults(handler=command_config_check)
    config.set_defaults(handler=lambda args: _missing_command(config))
    parser.set_defaults(handler=lambda args: _missing_command(parser))
    return parser


def _metrics_command(commands: Any) -> None:
    metrics = _command(
        commands,
        "metrics",
        "serve Prometheus metrics read from the ledger",
        "Serve http://HOST:PORT/metrics for Prometheus: the attempts, errors, tokens,\n"
        "dollars, latencies and cache hits of every process that writes this ledger\n"
        "(read as rows are settled) and the budget spent per period; with LLM_REDIS_URL,\n"
        "the providers' cooldowns and Retry-After pauses too. Runs until interrupted.\n"
        "Needs the [prometheus] extra. The metrics: docs/observability.md.",
        f"""
{PROG} metrics --port 9464
{PROG} metrics --host 0.0.0.0 --ledger postgresql://llm@db:5432/llm
{PROG} metrics --once > /var/lib/node_exporter/textfile/leadfactory_llm.prom
""",
    )
    metrics.add_argument(
        "--port", type=int, default=9464, help="port to listen on (default 9464; 0: any free one)"
    )
    metrics.add_argument("--host", default="127.0.0.1", help="address (default 127.0.0.1)")
    metrics.add_argument("--once", action="store_true", help="print the metrics once and exit")
    _ledger_option(metrics)
    metrics.set_defaults(handler=command_metrics)


def _ledger_option(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--ledger",
        metavar="PATH_OR_URL",
        help="ledger file, or postgresql://... URL (default: LLM_LEDGER_URL if set, else "
        "the file the path command prints)",
    )


def _missing_command(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return EXIT_USAGE
