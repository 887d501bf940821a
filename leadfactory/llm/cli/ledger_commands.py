"""Commands that only read the ledger (``costs``, ``path``): no LiteLLM, no client."""

from __future__ import annotations

import argparse
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from .output import PROG, BadValueError, CommandError, format_table, print_json

_GROUP_COLUMNS = {
    "day": ["day"],
    "month": ["month"],
    "provider": ["provider"],
    "model": ["provider", "model"],
    "caller": ["caller"],
}
# The table's sums: the billed tokens beside the dollars (--json has every field).
_SUM_COLUMNS = [
    "calls",
    "errors",
    "cache_hits",
    "input_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "output_tokens",
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
    """``--ledger`` when it names a file, else the default ledger file."""
    return Path(args.ledger).expanduser() if args.ledger else default_ledger_path()


def costs_rows(path: Path, by: str, since: str | None) -> list[dict[str, Any]]:
    """The ledger's sums grouped ``by``; the file is opened read-only, nothing is created."""
    from ..exceptions import LLMError
    from ..ledger import CostLedger

    if not path.exists():
        raise CommandError(
            f"no ledger at {path}",
            "make a call first, or point LLM_LEDGER_PATH or --ledger at the ledger file",
        )
    if path.is_dir():
        raise CommandError(f"{path} is a folder, not a ledger file", f"`{PROG} path` prints one")
    start = None if since is None else datetime.fromisoformat(since)
    if start is not None and start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    try:
        with CostLedger(path, read_only=True) as ledger:
            return ledger.totals(by=by, since=start)  # type: ignore[arg-type]
    except LLMError as error:
        raise CommandError(
            str(error),
            f"is it a ledger file, and readable by this user? `{PROG} path` prints the default one",
        ) from None


def command_costs(args: argparse.Namespace) -> int:
    from .ledger_backend import ledger_url, postgres_costs

    since = parse_since(args.since) if args.since else None
    url = ledger_url(args)
    if url is not None:
        rows, path = postgres_costs(url, args.by, since)
    else:
        path = ledger_path(args)
        rows = costs_rows(path, args.by, since)
    if args.json:
        print_json(rows)
    elif not rows:
        print(f"no calls in {path}" + (f" since {args.since}" if since else ""))
    else:
        print(format_table(rows, _GROUP_COLUMNS[args.by] + _SUM_COLUMNS))
        total = sum(row["cost_usd"] or 0 for row in rows)
        saved = sum(row["saved_usd"] or 0 for row in rows)
        print(f"\ntotal ${total:.6f} spent, ${saved:.6f} saved by the cache  ({path})")
    return 0


def command_path(args: argparse.Namespace) -> int:
    print(default_ledger_path())
    return 0
