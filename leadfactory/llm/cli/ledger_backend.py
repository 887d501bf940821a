"""Which ledger a command reads: ``--ledger`` (a file or a ``postgresql://`` URL), else
``LLM_LEDGER_URL``, else the SQLite file; and a line saying which, and whether it answers.

URLs are only ever shown without their password.
"""

from __future__ import annotations

import argparse
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..dburl import is_postgres_url, public_url

__all__ = ["apply_ledger_option", "ledger_line", "ledger_url", "postgres_costs"]


def ledger_url(args: argparse.Namespace) -> str | None:
    """The PostgreSQL URL the command should read, or None for the SQLite file."""
    given = getattr(args, "ledger", None)
    if given:
        return given if is_postgres_url(given) else None
    return os.environ.get("LLM_LEDGER_URL", "").strip() or None


def apply_ledger_option(config: Any, args: argparse.Namespace) -> Any:
    """``config`` pointed at ``--ledger`` when it was given (a URL or a file)."""
    given = getattr(args, "ledger", None)
    if given and is_postgres_url(given):
        config.ledger_url = given
    elif given:
        config.ledger_url = None
        config.ledger_path = Path(given).expanduser()
    return config


def ledger_line(config: Any) -> tuple[str, str | None]:
    """(``ledger: ...`` for people, the problem when a PostgreSQL ledger does not answer)."""
    if not config.cost_config.cost_tracking_enabled:
        return "ledger: none (LLM_COST_TRACKING is false)", None
    when = "; settlements in the background" if config.settles_in_background() else ""
    if config.ledger_url is None:
        from ..ledger import CostLedger

        where = config.ledger_path or CostLedger.default_path()
        return f"ledger: SQLite file {where}{when}", None
    from ..exceptions import LLMError
    from ..ledger.postgres import PostgresLedger

    url = config.ledger_url.get_secret_value()
    try:
        with PostgresLedger(url) as ledger:
            ledger.ping()
    except LLMError as error:
        return f"ledger: PostgreSQL {public_url(url)} (does not answer)", str(error)
    return f"ledger: PostgreSQL {public_url(url)} (answers){when}", None


def postgres_costs(url: str, by: str, since: str | None) -> tuple[list[dict[str, Any]], str]:
    """``costs`` rows from the PostgreSQL ledger at ``url``, and where they came from."""
    from ..ledger.postgres import PostgresLedger
    from .output import BadValueError

    moment = None
    if since:
        moment = datetime.fromisoformat(since)
        moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    try:
        ledger = PostgresLedger(url)
    except ValueError as error:  # never quotes the URL
        raise BadValueError(
            f"the ledger URL {error}", "pass --ledger postgresql://... or fix LLM_LEDGER_URL"
        ) from None
    with ledger:
        return ledger.totals(by=by, since=moment), f"PostgreSQL {ledger.url}"
