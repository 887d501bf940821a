"""Start-up cost: ``import leadfactory.llm``, and ``leadfactory-llm costs`` on a 100,000-row ledger.

    python bench/bench_startup.py [--quick] [--runs 10] [--rows 100000]

Each figure is the median wall time of fresh subprocesses, the commands run in
rotating order round after round. Import times are shown minus a bare
``python -c pass`` (shown separately); the CLI figure is the whole command, as a
user waits for it. ``import litellm`` is there for reference. The slowest
imports come from ``python -X importtime``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, banner, median, parse_args, table, target_cell

PY = sys.executable
COMMANDS = {
    "python -c pass": [PY, "-c", "pass"],
    "import leadfactory.llm": [PY, "-c", "import leadfactory.llm"],
    "from leadfactory.llm import LLMClient": [PY, "-c", "from leadfactory.llm import LLMClient"],
    "import litellm": [PY, "-c", "import litellm"],
}


def child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, LITELLM_LOCAL_MODEL_COST_MAP="True", **extra)
    env.pop("PYTHONPROFILEIMPORTTIME", None)
    return env


def timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, cwd=tempfile.gettempdir())
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return elapsed


def rounds(commands: dict[str, list[str]], runs: int, env: dict[str, str]) -> dict[str, list]:
    names = list(commands)
    for name in names:  # warm the file cache and .pyc files
        timed(commands[name], env)
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(runs):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            times[name].append(timed(commands[name], env))
    return times


def _importtime(code: str) -> list[tuple[int, str]]:
    done = subprocess.run(
        [PY, "-X", "importtime", "-c", code],
        env=child_env(),
        capture_output=True,
        text=True,
        cwd=tempfile.gettempdir(),
    )
    rows = []
    for line in done.stderr.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[1].strip().isdigit():
            rows.append((int(parts[1]), parts[2].rstrip()))
    return rows


def slowest_imports(code: str, count: int = 6) -> list[list]:
    """The ``count`` largest cumulative import times under ``code`` (not at start-up)."""
    startup = {name.strip() for _, name in _importtime("pass")}
    rows = [r for r in _importtime(code) if r[1].strip() not in startup]
    rows.sort(reverse=True)
    return [[name, us / 1e6] for us, name in rows[:count]]


def cli_command() -> list[str] | None:
    if not (ROOT / "leadfactory" / "llm" / "cli" / "__init__.py").exists():
        return None
    script = shutil.which("leadfactory-llm", path=str(Path(PY).parent))
    return [script, "costs"] if script else [PY, "-m", "leadfactory.llm.cli", "costs"]


def main() -> None:
    args = parse_args(
        __doc__,
        runs=(int, 10, "runs of each command"),
        rows=(int, 100_000, "ledger rows for the costs command"),
    )
    runs = 3 if args.quick else args.runs
    banner(
        "bench_startup: import time and CLI start-up",
        f"median of {runs} fresh subprocesses per command (after one warm-up run each); "
        f"ledger of {args.rows:,} rows for `leadfactory-llm costs`",
    )
    env = child_env()
    times = rounds(COMMANDS, runs, env)
    base = median(times["python -c pass"])
    rows = [["python -c pass (baseline, not subtracted)", base, "-"]]
    for name in list(COMMANDS)[1:]:
        value = median(times[name]) - base
        target = target_cell(value, 0.3, unit=" s") if name == "import leadfactory.llm" else "-"
        rows.append([f"{name} (minus baseline)", value, target])

    command = cli_command()
    cli_note = None
    if command is None:
        rows.append(["leadfactory-llm costs (100k rows)", "not available yet", "< 0.5 s"])
    else:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from bench_ledger import prefill  # the ledger benchmark's fast bulk insert

        with tempfile.TemporaryDirectory(prefix="llm-bench-") as tmp:
            path = Path(tmp) / "ledger.db"
            prefill(path, args.rows)
            cli_env = child_env(LLM_LEDGER_PATH=str(path))
            cli_times = rounds({"costs": command}, runs, cli_env)["costs"]
            shown = subprocess.run(command, env=cli_env, capture_output=True, text=True)
            cli_note = shown.stdout.strip().splitlines()[:6]
        value = median(cli_times)
        rows.append(
            [
                f"leadfactory-llm costs ({args.rows // 1000}k rows, whole command)",
                value,
                target_cell(value, 0.5, unit=" s"),
            ]
        )
    table(["command", "seconds", "target"], rows)
    if cli_note:
        print("\n`leadfactory-llm costs` printed (first lines):")
        for line in cli_note:
            print("   ", line)
    for code in ("import leadfactory.llm", "from leadfactory.llm import LLMClient"):
        print(f"\nslowest imports under `{code}` (cumulative, one run):")
        table(["module", "seconds"], slowest_imports(code))


if __name__ == "__main__":
    main()
