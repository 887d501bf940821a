"""``leadfactory-llm``: ask a question, look at providers, find where the money went.

Commands that only read the ledger (``costs``, ``path``) never import LiteLLM, pydantic
or the client, so they start in a fraction of a second. Every error is reported as one
line, with a hint where one helps; a closed pipe (``| head -1``) ends the command quietly.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sqlite3
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn

from .exceptions import (
    AllProvidersFailedError,
    LedgerBusyError,
    LLMAuthenticationError,
    LLMConfigurationError,
    LLMConnectionError,
    LLMError,
    LLMQuotaExceededError,
    LLMValidationError,
)

__all__ = ["main"]

PROG = "leadfactory-llm"
EXIT_USAGE, EXIT_BROKEN_PIPE, EXIT_INTERRUPTED = 2, 141, 130
NO_PROVIDER_HINT = (
    "set OPENAI_API_KEY or ANTHROPIC_API_KEY (in the environment or ./.env), or run Ollama "
    f"and leave it enabled; `{PROG} config check` shows what is configured"
)
UNREACHABLE_HINT = (
    "no provider answered: is Ollama running (`ollama serve`) where OLLAMA_HOST says? "
    "Check the *_BASE_URL settings, or set OPENAI_API_KEY or ANTHROPIC_API_KEY"
)
# The hint for a library error: the first row whose class matches (subclasses first).
ERROR_HINTS: tuple[tuple[type[LLMError], str], ...] = (
    (LLMConfigurationError, f"fix the setting named above; `{PROG} config check` lists them all"),
    (
        LLMQuotaExceededError,
        "a budget (LLM_MAX_COST_PER_REQUEST, LLM_DAILY_COST_LIMIT, LLM_MONTHLY_COST_LIMIT) "
        f"or the provider account's credit ran out; `{PROG} costs --since today` shows the spend",
    ),
    (LLMValidationError, f"check the prompt and the options: `{PROG} chat --help`"),
    (LLMAuthenticationError, "check that provider's API key (OPENAI_API_KEY, ANTHROPIC_API_KEY)"),
    (LedgerBusyError, "other processes held the ledger too long; try again"),
    (LLMError, f"`{PROG} status` shows each provider; see docs/troubleshooting.md"),
)


class CommandError(Exception):
    """A problem to report as one line, with a hint, and exit code 1."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


def report(message: str, hint: str | None = None, code: int = 1, prog: str = PROG) -> int:
    """Print ``prog: error: message`` (one line) and the hint to stderr; return ``code``."""
    print(f"{prog}: error: {' '.join(message.split())}", file=sys.stderr)
    if hint:
        print(f"hint: {hint}", file=sys.stderr)
    return code


def hint_for(error: LLMError) -> str:
    if isinstance(error, AllProvidersFailedError):
        causes = list(error.provider_errors.values())
        if not causes:
            return NO_PROVIDER_HINT
        if all(isinstance(cause, LLMConnectionError) for cause in causes):
            return UNREACHABLE_HINT
    return next(hint for kind, hint in ERROR_HINTS if isinstance(error, kind))


# -- output ---------------------------------------------------------------------------


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """An aligned text table: numbers to the right (dollars to 6 places), text to the left."""

    def cell(value: Any) -> str:
        if value is None:
            return "-"
        if isinstance(value, float):
            return f"{value:.6f}"
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


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, default=str))


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
SINCE_HINT = "use e.g. --since 7d, --since 24h, --since today or --since 2026-11-01"


def parse_since(text: str, now: datetime | None = None) -> str:
    """``7d``, ``24h``, ``30m``, ``today``, or an ISO date/time -> an ISO UTC lower bound."""
    now = now or datetime.now(UTC)
    text = text.strip().lower()
    if text == "today":
        return now.strftime("%Y-%m-%d")
    match = re.fullmatch(r"(\d+)\s*([dhm])", text)
    if match:
        unit = {"d": "days", "h": "hours", "m": "minutes"}[match.group(2)]
        try:
            return (now - timedelta(**{unit: int(match.group(1))})).isoformat()
        except OverflowError:
            raise CommandError(f"--since {text!r} reaches too far back", SINCE_HINT) from None
    try:
        when = datetime.fromisoformat(text.upper() if "t" in text else text)
    except ValueError:
        raise CommandError(f"--since {text!r} is not a date or a duration", SINCE_HINT) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).isoformat()


def default_ledger_path() -> Path:
    from .ledger import CostLedger

    return CostLedger.default_path()


def ledger_path(args: argparse.Namespace) -> Path:
    return Path(args.ledger).expanduser() if args.ledger else default_ledger_path()


def costs_rows(path: Path, by: str, since: str | None) -> list[dict[str, Any]]:
    """The ledger's sums grouped ``by``; the file is opened read-only."""
    if not path.exists():
        raise CommandError(
            f"no ledger at {path}",
            "make a call first, or point LLM_LEDGER_PATH or --ledger at the ledger file",
        )
    if path.is_dir():
        raise CommandError(f"{path} is a folder, not a ledger file", f"`{PROG} path` prints one")
    select, group, _ = _GROUPS[by]
    where, params = "WHERE outcome != 'pending'", []
    if since:
        where += " AND ts >= ?"
        params.append(since)
    query = f"SELECT {select}, {_SUMS} FROM calls {where} GROUP BY {group} ORDER BY {group}"
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            conn.row_factory = sqlite3.Row
            return [dict(row) for row in conn.execute(query, params)]
        finally:
            conn.close()
    except sqlite3.Error as error:
        raise CommandError(
            f"cannot read the ledger {path}: {error}",
            f"is it a ledger file, and readable by this user? `{PROG} path` prints the default one",
        ) from None


def command_costs(args: argparse.Namespace) -> int:
    path = ledger_path(args)
    since = parse_since(args.since) if args.since else None
    rows = costs_rows(path, args.by, since)
    if args.json:
        print_json(rows)
    elif not rows:
        print(f"no calls in {path}" + (f" since {args.since}" if since else ""))
    else:
        print(format_table(rows, _GROUPS[args.by][2] + _SUM_COLUMNS))
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
        print_json(status)
    else:
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
        keys = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}
        missing = {name: key for name, key in keys.items() if name not in status}
        if missing:
            print(
                f"\n(not configured: {', '.join(missing)}; "
                f"set {' or '.join(missing.values())} to use them)"
            )
    if not any(info["available"] for info in status.values()):
        sys.stdout.flush()
        return report("no provider can take a call now (see the note column)", NO_PROVIDER_HINT)
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


def read_prompt(args: argparse.Namespace) -> str:
    if args.prompt:
        return " ".join(args.prompt)
    if sys.stdin is None or sys.stdin.isatty():
        print("Type the prompt, then Ctrl-D on a line of its own.", file=sys.stderr)
    prompt = sys.stdin.read() if sys.stdin is not None else ""
    if not prompt.strip():
        raise CommandError(
            "the prompt is empty", f'pass it as arguments: {PROG} chat "What is 2+2?"'
        )
    return prompt


def command_chat(args: argparse.Namespace) -> int:
    from .client import LLMClient
    from .config import FallbackStrategy

    strategies = [strategy.value for strategy in FallbackStrategy]
    if args.strategy is not None and args.strategy not in strategies:
        raise CommandError(
            f"--strategy {args.strategy!r} is not a strategy", "use one of " + ", ".join(strategies)
        )
    messages = [{"role": "system", "content": args.system}] if args.system else []
    messages.append({"role": "user", "content": read_prompt(args)})
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
        print_json(response)
        return 0
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
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    chat = _command(
        commands,
        "chat",
        "ask one question (calls a provider)",
        "Send one prompt through the fallback chain and print the answer on stdout.\n"
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
    chat.add_argument("--json", action="store_true", help="print the whole response as JSON")
    chat.set_defaults(handler=command_chat)

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
    status.set_defaults(handler=command_status)

    costs = _command(
        commands,
        "costs",
        "spend from the ledger, by day, month, provider or model",
        "Sum the ledger: calls, errors, cache hits, tokens, dollars spent and dollars\n"
        "the cache saved, as an aligned table (or JSON). Opens the ledger read-only\n"
        "and never calls a provider, so it is safe while a pipeline runs.",
        f"""
{PROG} costs
{PROG} costs --by provider --since 7d
{PROG} costs --by model --since today --json
{PROG} costs --ledger /path/to/ledger.db --by month
""",
    )
    costs.add_argument("--by", choices=list(_GROUPS), default="day", help="group rows by (day)")
    costs.add_argument(
        "--since",
        metavar="WHEN",
        help="only rows since WHEN: 7d, 24h, 30m, today, or an ISO date/time (UTC)",
    )
    costs.add_argument(
        "--ledger", metavar="PATH", help="ledger file (default: what the path command prints)"
    )
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
    check.set_defaults(handler=command_config_check)
    config.set_defaults(handler=lambda args: _missing_command(config))
    parser.set_defaults(handler=lambda args: _missing_command(parser))
    return parser


def _missing_command(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return EXIT_USAGE


def _discard_stdout() -> None:
    """After a closed pipe: send what is left of stdout to /dev/null, so exit stays quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # not a real file (tests capture stdout)
        pass


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``leadfactory-llm`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        code = args.handler(args)
        sys.stdout.flush()
        return code
    except BrokenPipeError:  # `| head -1` closed the pipe: stop quietly
        _discard_stdout()
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except CommandError as error:
        return report(str(error), error.hint)
    except LLMError as error:
        return report(f"{type(error).__name__}: {error}", hint_for(error))
    except (sqlite3.Error, OSError) as error:  # the ledger or cache file, from the client
        return report(
            f"{type(error).__name__}: {error}",
            "check that LLM_LEDGER_PATH and LLM_CACHE_PATH point to files this user can "
            f"write (the ledger is at {default_ledger_path()})",
        )


if __name__ == "__main__":
    sys.exit(main())
