"""What every command shares: the program name, exit codes, one-line errors with hints,
tables and JSON output."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

from ..exceptions import (
    AllProvidersFailedError,
    LedgerBusyError,
    LLMAuthenticationError,
    LLMConfigurationError,
    LLMConnectionError,
    LLMError,
    LLMQuotaExceededError,
    LLMValidationError,
)

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

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


class BadValueError(CommandError):
    """An option's value the command cannot use (``--since yesterday``): exit code 2."""

    exit_code = EXIT_USAGE


def report(message: str, hint: str | None = None, code: int = 1, prog: str = PROG) -> int:
    """Print ``prog: error: message`` (one line) and the hint to stderr; return ``code``."""
    print(f"{prog}: error: {' '.join(message.split())}", file=sys.stderr)
    if hint:
        print(f"hint: {hint}", file=sys.stderr)
    return code


def hint_for(error: LLMError, command: str | None = None) -> str:
    """What to do about ``error``, raised by ``command``: never "run" that same command."""
    hint = next(hint for kind, hint in ERROR_HINTS if isinstance(error, kind))
    if isinstance(error, AllProvidersFailedError):
        causes = list(error.provider_errors.values())
        if not causes:
            hint = NO_PROVIDER_HINT
        elif all(isinstance(cause, LLMConnectionError) for cause in causes):
            hint = UNREACHABLE_HINT
    if command and f"`{PROG} {command}" in hint:
        return "see docs/troubleshooting.md for this error"
    return hint


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
