"""``leadfactory-llm``: ask a question, look at providers, find where the money went.

Commands that only read the ledger (``costs``, ``path``) never import LiteLLM, pydantic
or the client, so they start in a fraction of a second. Every error is reported as one
line, with a hint where one helps; a closed pipe (``| head -1``) ends the command quietly.
"""

from __future__ import annotations

import os
import sqlite3
import sys
from collections.abc import Sequence

from ..exceptions import LLMError
from .ledger_commands import default_ledger_path, parse_since
from .output import EXIT_BROKEN_PIPE, EXIT_INTERRUPTED, CommandError, hint_for, report
from .parser import build_parser

__all__ = ["main", "parse_since"]


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
        return report(str(error), error.hint, error.exit_code)
    except LLMError as error:
        return report(f"{type(error).__name__}: {error}", hint_for(error, args.command))
    except (sqlite3.Error, OSError) as error:  # the ledger or cache file, from the client
        return report(
            f"{type(error).__name__}: {error}",
            "check that LLM_LEDGER_PATH and LLM_CACHE_PATH point to files this user can "
            f"write (the ledger is at {default_ledger_path()})",
        )
