"""Record the vcrpy cassettes under ``cassettes/`` that the cassette tests replay
(tests/test_cassettes.py, tests/test_cassettes_unrecorded.py).

Against the bundled simulator (no keys, no network; what is committed)::

    python -m tests.record_cassettes

Against the real providers (OPENAI_API_KEY, ANTHROPIC_API_KEY, and an Ollama server at
OLLAMA_HOST, default http://localhost:11434, with ``llama3:8b`` pulled)::

    python -m tests.record_cassettes --real

Options: ``--only NAME`` (repeatable) records some scenarios, ``--mode sync|async`` one
client path. A scenario whose provider is not available is skipped, and its old cassette kept.

Every request is rewritten to the vendor's real base URL before it is stored
(``https://api.openai.com/v1``, ``https://api.anthropic.com``, ``http://localhost:11434``),
so the tests replay with the client's default URLs and nothing running. Credentials are
removed: the ``authorization``, ``x-api-key`` and ``api-key`` headers are dropped, and every
key used is replaced by ``<API_KEY>`` wherever else it appears (URIs, bodies, response
headers and bodies). Recording ends with a scan that fails if a key is left in any cassette.

The scenarios (tests/cassette_scenarios.py) and the vcr configuration
(tests/cassette_io.py) are modules of their own: the recorder and the tests import both,
so recording and replay cannot drift apart.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from leadfactory.llm.simulator import Simulator

from .cassette_io import cassette_vcr, find_secrets, generation_requests
from .cassette_scenarios import (
    CASSETTES,
    INVALID_KEY,
    MODES,
    PROTOCOLS,
    REAL_BASE_URLS,
    SCENARIOS,
    SCENARIOS_BY_NAME,
    SENTINEL_KEY,
    Scenario,
    ask,
    build_client,
    check_response,
    expected_generation_providers,
)


def _versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in ("litellm", "openai", "httpx", "aiohttp", "vcrpy"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


@dataclass
class Target:
    """Where a recording goes: the simulator (with its faults) or the real providers."""

    source: str
    base_urls: dict[str, str | None]
    keys: dict[str, str | None]
    simulator: Simulator | None = None

    def rewrite(self) -> dict[str, str]:
        return {url: REAL_BASE_URLS[name] for name, url in self.base_urls.items() if url}

    def unavailable(self, scenario: Scenario) -> str | None:
        if self.simulator is not None:
            return None
        if scenario.simulator_only:
            return "the simulator is the only provider that fails this way on demand"
        for name in scenario.providers:
            if name == "ollama":
                if not _ollama_running(self.base_urls["ollama"]):
                    return f"no Ollama server at {self.base_urls['ollama']}"
            elif not self.keys.get(name) and name != scenario.failing:
                return f"{name.upper()}_API_KEY is not set"
        return None

    @contextmanager
    def faulted(self, scenario: Scenario) -> Iterator[None]:
        sim = self.simulator
        if sim is None:  # real providers fail by themselves: bad key, missing model
            yield
            return
        sim.clear_faults()
        if scenario.failing is not None:
            sim.set_fault(scenario.failing, scenario.fault)
        try:
            yield
        finally:
            sim.clear_faults()


def _ollama_running(base_url: str | None) -> bool:
    if not base_url:
        return False
    try:
        with urllib.request.urlopen(f"{base_url}/api/version", timeout=2):  # noqa: S310
            return True
    except OSError:
        return False


def record_one(target: Target, scenario: Scenario, mode: str) -> Path:
    """Record one scenario through one client path; returns the cassette written."""
    path = scenario.cassette(mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".recording.yaml")
    partial.unlink(missing_ok=True)
    secrets = [*target.keys.values(), INVALID_KEY]
    recorder = cassette_vcr(rewrite=target.rewrite(), secrets=secrets)
    client = build_client(scenario, target.base_urls, target.keys)
    try:
        with (
            target.faulted(scenario),
            recorder.use_cassette(str(partial), record_mode="once") as cassette,
        ):
            cassette.get_metadata(
                "recording",
                {
                    "source": target.source,
                    "scenario": scenario.name,
                    "mode": mode,
                    "versions": _versions(),
                },
            )
            response = ask(client, mode)
        check_response(scenario, response)
        recorded = [p for p, _ in generation_requests(r for r, _ in cassette.data)]
        if recorded != expected_generation_providers(scenario):
            raise AssertionError(
                f"{scenario.name}: recorded generation requests to {recorded}, "
                f"expected {expected_generation_providers(scenario)}"
            )
        leaked = find_secrets([partial], [s for s in secrets if s])
        if leaked:
            raise AssertionError(f"a key was left in the cassette: {leaked}")
        partial.replace(path)
    finally:
        client.close()
        partial.unlink(missing_ok=True)
    return path


@contextmanager
def environment(values: Mapping[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def record(source: str, names: Sequence[str], modes: Sequence[str]) -> int:
    scenarios = [SCENARIOS_BY_NAME[n] for n in names] if names else list(SCENARIOS)
    failures = 0
    with ExitStack() as stack:
        workdir = stack.enter_context(tempfile.TemporaryDirectory(prefix="cassettes-"))
        paths = {"LLM_LEDGER_PATH": "ledger.db", "LLM_CACHE_PATH": "cache.db"}
        stack.enter_context(environment({k: str(Path(workdir, v)) for k, v in paths.items()}))
        if source == "simulator":
            sim = stack.enter_context(Simulator())
            stack.enter_context(environment(sim.env()))
            target = Target(
                source,
                {name: sim.base_url(name) for name in PROTOCOLS},
                {"openai": SENTINEL_KEY, "anthropic": SENTINEL_KEY},
                sim,
            )
        else:
            host = os.environ.get("OLLAMA_HOST") or REAL_BASE_URLS["ollama"]
            host = (host if "://" in host else f"http://{host}").rstrip("/")
            target = Target(
                source,
                {"openai": None, "anthropic": None, "ollama": host},
                {
                    "openai": os.environ.get("OPENAI_API_KEY"),
                    "anthropic": os.environ.get("ANTHROPIC_API_KEY"),
                },
            )
        for scenario in scenarios:
            why = target.unavailable(scenario)
            for mode in modes:
                label = f"{mode}/{scenario.name}"
                if why:
                    print(f"skip   {label}: {why} (old cassette kept)")
                    continue
                try:
                    path = record_one(target, scenario, mode)
                except Exception as error:  # report every scenario, then fail
                    failures += 1
                    print(f"FAILED {label}: {type(error).__name__}: {error}")
                else:
                    print(f"wrote  {path.relative_to(CASSETTES.parent)}")
    return 1 if failures else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--real",
        action="store_true",
        help="record against the real providers (keys from the environment)",
    )
    parser.add_argument("--only", action="append", default=[], choices=sorted(SCENARIOS_BY_NAME))
    parser.add_argument("--mode", action="append", default=[], choices=MODES)
    args = parser.parse_args(argv)
    return record("real" if args.real else "simulator", args.only, args.mode or list(MODES))


if __name__ == "__main__":
    sys.exit(main())
