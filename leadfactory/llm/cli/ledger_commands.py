"""Commands that only read the ledger (``costs``, ``path``): no LiteLLM, no client."""

from __future__ import annotations

import argparse
import re
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from .output import PROG, BadValueError, CommandError, format_table, print_json

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
            raise BadValueError(f"--since {text!r} reaches too far back", SINCE_HINT) from None
    try:
        when = datetime.fromisoformat(text.upper() if "t" in text else text)
    except ValueError:
        raise BadValueError(f"--since {text!r} is not a date or a duration", SINCE_HINT) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).isoformat()


def default_ledger_path() -> Path:
    from ..ledger import CostLedger

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
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            conn.row_factory = sqlite3.Row
            # rows whose cost is an estimate (a file not yet migrated has none)
            columns = {row[1] for row in conn.execute("PRAGMA table_info(calls)")}
            estimated = "SUM(estimated)" if "estimated" in columns else "0"
            query = (
                f"SELECT {select}, {_SUMS}, {estimated} AS estimated FROM calls {where}"
                f" GROUP BY {group} ORDER BY {group}"
            )
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
