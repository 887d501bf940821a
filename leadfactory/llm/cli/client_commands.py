"""Commands that load the configuration or the client (``status``, ``config check``,
``chat``); they import LiteLLM only when they run."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .output import (
    NO_PROVIDER_HINT,
    PROG,
    BadValueError,
    CommandError,
    format_table,
    print_json,
    report,
)


def load_config() -> Any:
    from ..config import LLMConfig

    return LLMConfig.from_environment()


def command_status(args: argparse.Namespace) -> int:
    from ..client import LLMClient
    from ..ledger import CostLedger
    from ..shared_state import backend_lines, describe_backends
    from .ledger_backend import apply_ledger_option, ledger_line

    config = apply_ledger_option(load_config(), args)
    ledger_text, problem = ledger_line(config)
    if problem is not None:
        print(ledger_text)
        return report(problem, "start the server, or point --ledger / LLM_LEDGER_URL at it")
    ledger = None  # a reading command: the ledger is read as it is, never created
    if config.cost_config.cost_tracking_enabled and config.ledger_url is None:
        path = config.ledger_path or CostLedger.default_path()
        ledger = CostLedger(path, read_only=True)
    with LLMClient(config, ledger=ledger) as client:
        status = client.get_provider_status()
        backends = describe_backends(client.config)
    if args.json:
        print_json(status)
    else:
        rows = [
            {
                "provider": name,
                "available": "yes" if info["available"] else "no",
                "model": info["model"],
                "priority": info["priority"],
                "in_1k": info["input_cost_per_1k_tokens"],
                "out_1k": info["output_cost_per_1k_tokens"],
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
        print("\n" + "\n".join([ledger_text, *backend_lines(backends)]))
    if not any(info["available"] for info in status.values()):
        sys.stdout.flush()
        return report("no provider can take a call now (see the note column)", NO_PROVIDER_HINT)
    return 0


def command_config_check(args: argparse.Namespace) -> int:
    from ..exceptions import LLMConfigurationError

    try:
        config = load_config()
    except LLMConfigurationError as error:  # a setting that cannot be read: list it, no hint
        print(f"configuration problems:\n  - {error}")
        return 1
    from .ledger_backend import apply_ledger_option, ledger_line

    try:
        ledger_text, postgres_problem = ledger_line(apply_ledger_option(config, args))
    except LLMConfigurationError as error:  # a malformed --ledger
        print(f"configuration problems:\n  - {error}")
        return 1
    problems = config.validate() + ([postgres_problem] if postgres_problem else [])
    if config.cost_config.cost_tracking_enabled and config.ledger_url is None:
        from ..ledger import CostLedger, ledger_problem  # the file, looked at, not created

        if problem := ledger_problem(config.ledger_path or CostLedger.default_path()):
            problems.append(problem)
    order = config.get_provider_order()
    print(f"strategy: {config.fallback_strategy.value}; order: {' -> '.join(order) or '(none)'}")
    print_prices(config.providers)
    from ..shared_state import backend_lines, describe_backends

    print("\n".join([ledger_text, *backend_lines(describe_backends(config))]))
    if not problems:
        print("configuration OK")
        return 0
    print("configuration problems:")
    for problem in problems:
        print(f"  - {problem}")
    return 1


def print_prices(providers: Any) -> None:
    """Each enabled provider's model and prices (USD per 1M tokens), then the warnings."""
    from ..price_report import price_rows, price_warnings

    rows = price_rows(providers)
    if rows:
        print("prices, USD per 1M tokens (cache '-': priced as input):")
        columns = ["provider", "model", "input", "output", "cache_read", "cache_write"]
        print(format_table(rows, [*columns, "source"]))
    for warning in price_warnings(providers):
        print(f"warning: {warning}")


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


def print_stream(stream: Any) -> dict[str, Any]:
    """Print a stream's text as it arrives; its whole response once it ended.

    An interrupted stream leaves what arrived printed, and its error is raised."""
    with stream:
        try:
            for chunk in stream:
                for choice in chunk["choices"]:
                    print(choice["delta"].get("content") or "", end="", flush=True)
        finally:
            print(flush=True)
    return stream.response


def command_chat(args: argparse.Namespace) -> int:
    from ..client import LLMClient
    from ..config import FallbackStrategy

    strategies = [strategy.value for strategy in FallbackStrategy]
    if args.strategy is not None and args.strategy not in strategies:
        raise BadValueError(
            f"--strategy {args.strategy!r} is not a strategy", "use one of " + ", ".join(strategies)
        )
    messages = [{"role": "system", "content": args.system}] if args.system else []
    messages.append({"role": "user", "content": read_prompt(args)})
    config = load_config()
    if args.strategy:
        config.fallback_strategy = args.strategy
    options = {
        "model": args.model,
        "temperature": args.temperature,
        "max_tokens": args.max_tokens,
        "cache": not args.no_cache,
        "caller": "cli",
    }
    with LLMClient(config) as client:
        if args.json or args.no_stream:
            response = client.chat_completion(messages, **options)
        else:
            response = print_stream(client.chat_completion(messages, stream=True, **options))
    if args.json:
        print_json(response)
        return 0
    if args.no_stream:
        print(response["choices"][0]["message"]["content"])
    usage = response["usage"]
    print(
        f"\n[{response['provider']} {response['model']}  {usage['total_tokens']} tokens  "
        f"${response['cost']:.6f}  {response['latency_ms']:.0f} ms"
        f"{'  cached' if response['cached'] else ''}]",
        file=sys.stderr,
    )
    return 0
