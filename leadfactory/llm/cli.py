"""``leadfactory-llm``: ask a question, look at providers, find where the money went.

Commands that only read the ledger (``costs``, ``path``) never import LiteLLM or
the client, so they start in a fraction of a second.
"""

from __future__ import annotations

import argparse
import json
import re
import sqlite3
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

__all__ = ["main"]


class CommandError(Exception):
    """A problem to report as one line, with a hint, and exit code 1."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


# -- output ---------------------------------------------------------------------------


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """An aligned text table: numbers to the right, text to the left."""

    def cell(value: Any) -> str:
        if value is None:
            return "-"
        if isinstance(value, float):
            return f"{value:.6f}" if abs(value) < 1 else f"{value:.4f}"
        return str(value)

    cells = [[cell(row.get(column)) for column in columns] for row in rows]
    numeric = [
        all(isinstance(row.get(column), (int, float)) or row.get(column) is None for row in rows)
        for column in columns
    ]
    widths = [
        max([len(column)] + [len(line[i]) for line in cells]) for i, column in enumerate(columns)
    ]

    def line(values: Sequence[str]) -> str:
        return "  ".join(
            value.rjust(width) if is_number else value.ljust(width)
            for value, width, is_number in zip(values, widths, numeric, strict=True)
        ).rstrip()

    header = line(list(columns))
    return "\n".join([header, line(["-" * w for w in widths]), *(line(c) for c in cells)])


def emit(rows: list[dict[str, Any]], columns: Sequence[str], as_json: bool) -> None:
    if as_json:
        print(json.dumps(rows, indent=2, default=str))
    elif rows:
        print(format_table(rows, columns))
    else:
        print("(nothing recorded)")


# -- costs ----------------------------------------------------------------------------

_GROUPS = {
    "day": ("substr(ts, 1, 10) AS day", "day", ["day"]),
    "month": ("substr(ts, 1, 7) AS month", "month", ["month"]),
    "provider": ("provider", "provider", ["provider"]),
    "model": ("provider, model", "provider, model", ["provider", "model"]),
}
_SUMS = (
    "COUNT(*) AS calls, SUM(outcome = 'error') AS errors, SUM(outcome = 'cache_hit') AS cache_hits,"
    " SUM(prompt_tokens) AS prompt_tokens, SUM(completion_tokens) AS completion_tokens,"
    " ROUND(SUM(cost_usd), 6) AS cost_usd, ROUND(SUM(saved_usd), 6) AS saved_usd"
)
_SUM_COLUMNS = [
    "calls",
    "errors",
    "cache_hits",
    "prompt_tokens",
    "completion_tokens",
    "cost_usd",
    "saved_usd",
]


def parse_since(text: str, now: datetime | None = None) -> str:
    """``7d``, ``24h``, ``30m``, ``today``, or an ISO date/time -> an ISO UTC lower bound."""
    now = now or datetime.now(UTC)
    text = text.strip().lower()
    if text == "today":
        return now.strftime("%Y-%m-%d")
    match = re.fullmatch(r"(\d+)\s*([dhm])", text)
    if match:
        unit = {"d": "days", "h": "hours", "m": "minutes"}[match.group(2)]
        return (now - timedelta(**{unit: int(match.group(1))})).isoformat()
    try:
        when = datetime.fromisoformat(text.upper() if "t" in text else text)
    except ValueError:
        raise CommandError(
            f"--since {text!r} is not a date or a duration",
            "use e.g. --since 7d, --since 24h, --since today or --since 2026-11-01",
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).isoformat()


def default_ledger_path() -> Path:
    from .ledger import CostLedger

    return CostLedger.default_path()


def open_ledger_readonly(path: Path) -> sqlite3.Connection:
    if not path.exists():
        raise CommandError(
            f"no ledger at {path}",
            "make a call first, or point LLM_LEDGER_PATH / --ledger at the ledger file",
        )
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    return conn


def costs_rows(conn: sqlite3.Connection, by: str, since: str | None) -> list[dict[str, Any]]:
    select, group, _ = _GROUPS[by]
    where, params = "WHERE outcome != 'pending'", []
    if since:
        where += " AND ts >= ?"
        params.append(since)
    query = f"SELECT {select}, {_SUMS} FROM calls {where} GROUP BY {group} ORDER BY {group}"
    try:
        return [dict(row) for row in conn.execute(query, params)]
    except sqlite3.DatabaseError as error:
        raise CommandError(f"cannot read the ledger: {error}", "is this a ledger file?") from None


def command_costs(args: argparse.Namespace) -> int:
    path = Path(args.ledger).expanduser() if args.ledger else default_ledger_path()
    since = parse_since(args.since) if args.since else None
    with open_ledger_readonly(path) as conn:
        rows = costs_rows(conn, args.by, since)
    columns = _GROUPS[args.by][2] + _SUM_COLUMNS
    emit(rows, columns, args.json)
    if rows and not args.json:
        total = sum(row["cost_usd"] or 0 for row in rows)
        saved = sum(row["saved_usd"] or 0 for row in rows)
        print(f"\ntotal ${total:.6f} spent, ${saved:.6f} saved by the cache  ({path})")
    return 0


def command_path(args: argparse.Namespace) -> int:
    print(default_ledger_path())
    return 0


# -- commands that need the client -----------------------------------------------------


def load_config() -> Any:
    from .config import LLMConfig

    return LLMConfig.from_environment()


def command_status(args: argparse.Namespace) -> int:
    from .client import LLMClient

    with LLMClient(load_config()) as client:
        status = client.get_provider_status()
    if args.json:
        print(json.dumps(status, indent=2, default=str))
        return 0
    rows = [
        {
            "provider": name,
            "available": "yes" if info["available"] else "no",
            "model": info["model"],
            "priority": info["priority"],
            "per_1k": info["cost_per_1k_tokens"],
            "today_usd": info["daily_cost"],
            "month_usd": info["monthly_cost"],
            "requests": info["requests_today"],
            "errors": info["errors_today"],
            "rpm": info["rate_limit_rpm"],
            "tpm": info["rate_limit_tpm"],
            "note": info["unavailable_reason"] or "",
        }
        for name, info in status.items()
    ]
    print(format_table(rows, list(rows[0]) if rows else ["provider"]))
    return 0


def command_config_check(args: argparse.Namespace) -> int:
    config = load_config()
    problems = config.validate()
    order = config.get_provider_order()
    print(f"strategy: {config.fallback_strategy.value}; order: {' -> '.join(order) or '(none)'}")
    if not problems:
        print("configuration OK")
        return 0
    print("configuration problems:")
    for problem in problems:
        print(f"  - {problem}")
    return 1


def command_chat(args: argparse.Namespace) -> int:
    from .client import LLMClient

    prompt = " ".join(args.prompt) if args.prompt else sys.stdin.read()
    messages = []
    if args.system:
        messages.append({"role": "system", "content": args.system})
    messages.append({"role": "user", "content": prompt})
    config = load_config()
    if args.strategy:
        config.fallback_strategy = args.strategy
    with LLMClient(config) as client:
        response = client.chat_completion(
            messages,
            model=args.model,
            temperature=args.temperature,
            max_tokens=args.max_tokens,
            cache=not args.no_cache,
            caller="cli",
        )
    if args.json:
        print(json.dumps(response, indent=2))
    else:
        print(response["choices"][0]["message"]["content"])
        usage = response["usage"]
        print(
            f"\n[{response['provider']} {response['model']}  {usage['total_tokens']} tokens  "
            f"${response['cost']:.6f}  {response['latency_ms']:.0f} ms"
            f"{'  cached' if response['cached'] else ''}]",
            file=sys.stderr,
        )
    return 0


# -- parser ---------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="leadfactory-llm",
        description="Call LLM providers with fallback, and inspect the cost ledger.",
        epilog="Configuration comes from the environment and .env (OPENAI_API_KEY, "
        "ANTHROPIC_API_KEY, OLLAMA_HOST, LLM_*). The ledger is at LLM_LEDGER_PATH or the "
        "path `leadfactory-llm path` prints.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    chat = commands.add_parser(
        "chat",
        help="ask a question",
        description="Send one prompt and print the answer; "
        "provider, tokens, cost and latency go to stderr.",
    )
    chat.add_argument("prompt", nargs="*", help="the prompt (read from stdin when omitted)")
    chat.add_argument("--system", help="a system message to send first")
    chat.add_argument("--model", help="a provider (openai), provider/model, or a model name")
    chat.add_argument("--temperature", type=float, help="0 to 2 (default LLM_DEFAULT_TEMPERATURE)")
    chat.add_argument("--max-tokens", type=int, help="completion limit (LLM_DEFAULT_MAX_TOKENS)")
    chat.add_argument("--strategy", help="override LLM_FALLBACK_STRATEGY for this call")
    chat.add_argument("--no-cache", action="store_true", help="skip the response cache")
    chat.add_argument("--json", action="store_true", help="print the whole response dict")
    chat.set_defaults(handler=command_chat)

    status = commands.add_parser(
        "status",
        help="providers: availability, spend today, limits",
        description="One line per configured provider: whether the next call could use it "
        "(and why not), its model, priority, price, spend today and this month, requests and "
        "errors today, and its rate limits.",
    )
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(handler=command_status)

    costs = commands.add_parser(
        "costs",
        help="spend from the ledger, by day, month, provider or model",
        description="Sum the ledger: calls, errors, cache hits, tokens, dollars spent and "
        "dollars the cache saved. Reads the ledger only; never calls a provider.",
    )
    costs.add_argument("--by", choices=sorted(_GROUPS), default="day", help="group rows by")
    costs.add_argument("--since", help="only rows since: 7d, 24h, today, or an ISO date")
    costs.add_argument("--ledger", help="ledger file (default: LLM_LEDGER_PATH or `path`)")
    costs.add_argument("--json", action="store_true", help="print JSON")
    costs.set_defaults(handler=command_costs)

    path = commands.add_parser("path", help="print the ledger file's path")
    path.set_defaults(handler=command_path)

    config = commands.add_parser("config", help="configuration commands")
    config_commands = config.add_subparsers(dest="config_command", required=True, metavar="SUB")
    check = config_commands.add_parser(
        "check",
        help="list configuration problems (exit 1 if any)",
        description="Read the configuration as the client would and list its problems; "
        "exit status 1 when there are any.",
    )
    check.set_defaults(handler=command_config_check)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``leadfactory-llm`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except CommandError as error:
        print(f"leadfactory-llm: error: {error}", file=sys.stderr)
        if error.hint:
            print(f"hint: {error.hint}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as error:  # library errors: one readable line, no traceback
        from .exceptions import LLMConfigurationError, LLMError

        if not isinstance(error, LLMError):
            raise
        print(f"leadfactory-llm: {type(error).__name__}: {error}", file=sys.stderr)
        if isinstance(error, LLMConfigurationError):
            print(
                "hint: fix the variable named above (see `leadfactory-llm config check`)",
                file=sys.stderr,
            )
        return 1


if __name__ == "__main__":
    sys.exit(main())
