"""Run every benchmark in bench/ in turn, each in its own process, and print their output.

    python bench/run_all.py            # default settings (about 6-8 minutes on 2 cores)
    python bench/run_all.py --quick    # fewer iterations: a smoke run of about 2 minutes
    python bench/run_all.py overhead async   # only the benchmarks whose names contain these

Every bench_*.py is run. A script that accepts ``--quick`` gets it; bench_ledger.py
(which has no such flag) gets smaller ``--rows`` and ``--calls`` instead. Exits 1
if any benchmark failed to run; missed targets are reported, not failures.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
QUICK_ARGS = {"bench_ledger.py": ["--rows", "20000", "--calls", "1000"]}


def quick_args(script: Path) -> list[str]:
    if script.name in QUICK_ARGS:
        return QUICK_ARGS[script.name]
    return ["--quick"] if "--quick" in script.read_text() else []


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations in every benchmark")
    parser.add_argument("only", nargs="*", help="run only benchmarks whose file name contains one")
    args = parser.parse_args()

    scripts = sorted(HERE.glob("bench_*.py"))
    if args.only:
        scripts = [s for s in scripts if any(word in s.name for word in args.only)]
    failed, spent = [], {}
    for script in scripts:
        extra = quick_args(script) if args.quick else []
        print(f"\n##### {script.name} {' '.join(extra)}".rstrip(), flush=True)
        start = time.perf_counter()
        code = subprocess.run([sys.executable, str(script), *extra], cwd=HERE.parent).returncode
        spent[script.name] = time.perf_counter() - start
        if code != 0:
            failed.append(script.name)
            print(f"!!!!! {script.name} exited with {code}", flush=True)

    print("\n##### summary")
    for name, seconds in spent.items():
        status = "FAILED" if name in failed else "ran"
        print(f"{name:<24} {status:<7} {seconds:6.1f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
