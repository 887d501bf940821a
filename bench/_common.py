"""Shared helpers for the benchmarks: simulator + environment, timing, percentiles, tables.

Every benchmark starts the project's own provider simulator on 127.0.0.1, points
both the client and bare LiteLLM at it, and compares them in the same run.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Before anything imports LiteLLM: use the bundled price map, never the network.
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"

BARE_KEY = "sk-bench"
# Ollama as the client reaches it: LiteLLM's OpenAI route to Ollama's OpenAI-compatible /v1.
BARE_MODELS = {"openai": "openai/gpt-4", "ollama": "openai/llama3:8b"}
# The same models as the client names them (provider/model), so both do the same work
# whatever the configuration's default models are.
CLIENT_MODELS = {"openai": "openai/gpt-4", "ollama": "ollama/llama3:8b"}
NATIVE_OLLAMA_MODEL = "ollama_chat/llama3:8b"  # LiteLLM's native Ollama route, for reference
MAX_TOKENS = 20


# -- set-up -------------------------------------------------------------------------


def parse_args(doc: str, **extra: Any) -> argparse.Namespace:
    """``--quick`` plus any ``name=(type, default, help)`` options a benchmark adds
    (``bool``: a switch, off unless given)."""
    parser = argparse.ArgumentParser(description=doc.strip().splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations (smoke run)")
    for name, (kind, default, text) in extra.items():
        flag = f"--{name.replace('_', '-')}"
        if kind is bool:  # a switch
            parser.add_argument(flag, action="store_true", help=text)
        else:
            parser.add_argument(flag, type=kind, default=default, help=text)
    return parser.parse_args()


def client_env(sim: Any, tmp: str | Path, **extra: str) -> dict[str, str]:
    """Environment for an LLMClient pointed at ``sim``, with ledger and cache in ``tmp``."""
    env = dict(sim.env())
    env.update(
        OPENAI_API_KEY=BARE_KEY,
        ANTHROPIC_API_KEY="sk-ant-bench",
        LLM_LEDGER_PATH=str(Path(tmp) / "ledger.db"),
        LLM_CACHE_PATH=str(Path(tmp) / "cache.db"),
    )
    env.update(extra)
    return env


@contextlib.contextmanager
def simulator(**extra_env: str) -> Iterator[tuple[Any, Path]]:
    """Start the simulator and a temp dir; set the client's environment for the duration."""
    from leadfactory.llm.simulator import Simulator

    saved = dict(os.environ)
    with tempfile.TemporaryDirectory(prefix="llm-bench-") as tmp, Simulator() as sim:
        os.environ.update(client_env(sim, tmp, **extra_env))
        try:
            yield sim, Path(tmp)
        finally:
            os.environ.clear()
            os.environ.update(saved)


def load_litellm() -> Any:
    import litellm

    litellm.suppress_debug_info = True
    return litellm


def bare_args(sim: Any, messages: list[dict], provider: str = "openai") -> dict[str, Any]:
    """The arguments of the bare LiteLLM call the client is compared with."""
    args: dict[str, Any] = {
        "model": BARE_MODELS[provider],
        "api_base": sim.base_url(provider),
        "api_key": BARE_KEY,
        "messages": messages,
        "max_tokens": MAX_TOKENS,
        "num_retries": 0,
        "max_retries": 0,
    }
    if provider == "ollama":
        args["api_base"] += "/v1"
    return args


def bare_completion(sim: Any, messages: list[dict], provider: str = "openai") -> Any:
    return load_litellm().completion(**bare_args(sim, messages, provider))


async def bare_acompletion(sim: Any, messages: list[dict], provider: str = "openai") -> Any:
    return await load_litellm().acompletion(**bare_args(sim, messages, provider))


def messages(text: str = "Say hello in five words.") -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


# -- timing -------------------------------------------------------------------------


def time_ms(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000.0


def interleaved_calls(doc: str) -> tuple[int, str]:
    """Parse ``--quick``/``--calls`` for an :func:`interleaved` benchmark: the number of
    timed calls per case, and the start of its ``settings:`` line."""
    args = parse_args(doc, calls=(int, 300, "timed calls per case"))
    calls = 40 if args.quick else args.calls
    return calls, (
        f"{calls} timed calls per case, interleaved in bursts of 4 (first untimed), "
        "after 20 warm-up calls each; max_tokens=20; ledger on; "
    )


def bursts(names: Sequence[str], timed: int, burst: int = 4) -> Iterator[tuple[str, bool]]:
    """The order interleaved cases run in: ``(case, recorded)`` until each case has
    ``timed`` recorded runs (rounded up to whole bursts).

    Every step runs each case once, in a fresh random order, as a burst of ``burst`` runs
    whose first is not recorded: after a call (a stream: after each chunk) LiteLLM goes
    on working in a background thread (its success handler), and that work must be
    charged to the case that caused it, not to whichever case runs next. Interleaving
    spreads bursts of machine noise over every case alike.
    """
    rng = random.Random(1)
    per_step = max(1, burst - 1)
    for _ in range(-(-timed // per_step)):
        for name in rng.sample(list(names), len(names)):
            yield name, False  # absorbs what the previous case left running
            for _ in range(per_step):
                yield name, True


def interleaved(
    cases: dict[str, Callable[[int], Any]], calls: int, *, burst: int = 4, warmup: int = 20
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Wall-clock and CPU milliseconds per call for each case, the cases interleaved
    (:func:`bursts`).

    Each case is ``fn(i)`` (``i`` is a running call number, for unique prompts). CPU
    time is this thread's only (``time.thread_time``): the caller's own work, not
    LiteLLM's background thread or the simulator's, and far steadier than wall time on
    a busy machine.
    """
    names = list(cases)
    counter = 0
    for name in names:  # warm-up: connections, lazy imports, ledger and cache files
        for _ in range(warmup):
            cases[name](counter)
            counter += 1
    wall: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}
    for name, recorded in bursts(names, calls, burst):
        fn = cases[name]
        c0, w0 = time.thread_time(), time.perf_counter()
        fn(counter)
        w1, c1 = time.perf_counter(), time.thread_time()
        counter += 1
        if recorded:
            wall[name].append((w1 - w0) * 1000.0)
            cpu[name].append((c1 - c0) * 1000.0)
    return wall, cpu


def paired_median_diff(a: Sequence[float], b: Sequence[float]) -> float:
    """Median of ``a[k] - b[k]``: the per-call difference, from samples taken side by side."""
    return median([x - y for x, y in zip(a, b, strict=True)])


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (0-100), linear interpolation between closest ranks."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * p / 100.0
    low = int(k)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (k - low)


def alternating(names: Sequence[str], rounds: int) -> Iterator[str]:
    """The cases to run, round after round: in order in even rounds, reversed in odd ones."""
    for r in range(rounds):
        yield from (names if r % 2 == 0 else list(reversed(names)))


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


# -- output -------------------------------------------------------------------------


def verdict(value: float, target: float, *, at_most: bool = True) -> str:
    ok = value <= target if at_most else value >= target
    return "ok" if ok else "MISS"


def target_cell(value: float, target: float, *, at_most: bool = True, unit: str = "") -> str:
    sign = "<=" if at_most else ">="
    return f"{sign} {target:g}{unit}  {verdict(value, target, at_most=at_most)}"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Print a plain text table: first column left-aligned, the others right-aligned."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max(len(str(h)), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        first = f"{values[0]:<{widths[0]}}"
        rest = [f"{v:>{w}}" for v, w in zip(values[1:], widths[1:], strict=True)]
        return "  ".join([first, *rest]).rstrip()

    print(line([str(h) for h in headers]))
    print(line(["-" * w for w in widths]))
    for row in cells:
        print(line(row))


def _cell(value: Any) -> str:
    if isinstance(value, float):
        if value != value:  # nan
            return "-"
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
    return str(value)


def banner(title: str, settings: str) -> None:
    """Title, when and where, and the iteration counts this run used."""
    try:
        litellm_version = metadata.version("litellm")
    except metadata.PackageNotFoundError:
        litellm_version = "?"
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(f"== {title} ==")
    print(
        f"{now} | python {platform.python_version()} | litellm {litellm_version} | "
        f"{os.cpu_count()} cpus"
    )
    print(f"settings: {settings}")
    print()
