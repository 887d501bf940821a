"""``leadfactory-llm batch``: run a JSONL file of requests, write a JSONL file of answers.

Each input line is one request: ``{"id": ..., "messages": [...], ...}`` or ``{"id": ...,
"prompt": "..."}`` (other keys are chat_completion's arguments). A line that is not a
JSON object with messages or a prompt is reported by its number and skipped. The
answers are kept under a run named after the output file (or ``--run``), so running
the same command again after a crash or a stop asks no provider for the items already
answered. LiteLLM is imported only when the command runs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from .output import EXIT_INTERRUPTED, PROG, BadValueError, CommandError

__all__ = ["command_batch", "output_line", "read_requests"]

CALLER = "cli-batch"  # the ledger rows' caller unless a line names its own


def read_requests(path: Path) -> tuple[list[tuple[int, dict[str, Any]]], list[str]]:
    """The usable lines of ``path`` as (line number, request), and one problem per bad line."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise CommandError(
            f"cannot read {path}: {error}", "give a UTF-8 JSONL file, one request per line"
        ) from None
    requests, problems = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            request = json.loads(line)
        except ValueError as error:
            problems.append(f"line {number}: not JSON ({error})")
            continue
        if not isinstance(request, dict):
            problems.append(f"line {number}: a JSON {type(request).__name__}, not an object")
        elif not isinstance(request.get("messages"), list) and not isinstance(
            request.get("prompt"), str
        ):
            problems.append(f"line {number}: no messages (a list) or prompt (a string)")
        else:
            requests.append((number, {"caller": CALLER, **request}))
    return requests, problems


def output_line(number: int, item: Any) -> dict[str, Any]:
    """One output record: id, input line, status, content, provider, cost, cached, error."""
    response, error = item.response, item.error
    content = None
    if response is not None:
        choices = response.get("choices") or [{}]
        content = (choices[0].get("message") or {}).get("content")
    return {
        "id": item.id,
        "line": number,
        "status": item.status,
        "content": content,
        "provider": None if response is None else response.get("provider"),
        "cost": 0.0 if response is None else response.get("cost"),  # resumed: paid before
        "cached": None if response is None else bool(response.get("cached")),
        "error": None if error is None else type(error).__name__,
        "message": None if error is None else str(error),
    }


def command_batch(args: argparse.Namespace) -> int:
    from ..client import LLMClient
    from ..config import LLMConfig

    if args.concurrency < 1:
        raise BadValueError(f"--concurrency {args.concurrency} is not a positive number")
    if args.stop_at_spend is not None and args.stop_at_spend < 0:
        raise BadValueError(f"--stop-at-spend {args.stop_at_spend} is below 0")
    out = Path(args.out)
    requests, problems = read_requests(Path(args.input))
    for problem in problems:
        print(f"{PROG}: {problem}; skipped", file=sys.stderr)
    run = args.run or f"batch:{out.resolve()}"
    with LLMClient(LLMConfig.from_environment()) as client:
        results = client.map(
            [request for _, request in requests],
            concurrency=args.concurrency,
            run=run,
            stop_at_spend=args.stop_at_spend,
        )
    numbers = [number for number, _ in requests]
    records = [output_line(n, item) for n, item in zip(numbers, results.items, strict=True)]
    _write_atomically(out, records)
    counts = results.counts()
    succeeded = counts["answered"] + counts["resumed"]
    print(
        f"{PROG}: {succeeded} succeeded ({counts['resumed']} from an earlier run),"
        f" {counts['failed']} failed, {counts['not_run']} not run,"
        f" {len(problems)} bad lines skipped\n{PROG}: spent ${results.spent:.6f} now,"
        f" ${results.run_spent:.6f} in all by run {run!r}; answers in {out}",
        file=sys.stderr,
    )
    if results.stopped:
        print(f"{PROG}: stopped early: {results.stopped}", file=sys.stderr)
    if results.stopped and results.stopped.startswith("interrupted"):
        return EXIT_INTERRUPTED
    return 0 if succeeded == len(results) and not problems else 1


def _write_atomically(path: Path, records: list[dict[str, Any]]) -> None:
    """All of ``records`` at ``path``, or ``path`` as it was (a temporary file, renamed)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with temporary.open("w", encoding="utf-8") as file:
            for record in records:
                file.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
        os.replace(temporary, path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise CommandError(
            f"cannot write {path}: {error}", "give --out a file in a folder you can write"
        ) from None
