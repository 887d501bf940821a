"""Shared fixtures: every user path goes to a temp dir, no real keys, a simulator."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

SENTINEL_KEY = "sk-SENTINEL-7f3a9c1e5b2d4068"

# Environment variables that could point a test at a real account or a real file.
_ISOLATED_PREFIXES = ("OPENAI_", "ANTHROPIC_", "OLLAMA_", "LLM_")


@pytest.fixture(autouse=True)
def isolated_environment(tmp_path, monkeypatch) -> Iterator[None]:
    """No test sees the developer's keys, .env, ledger or cache."""
    for name in list(os.environ):
        if name.startswith(_ISOLATED_PREFIXES):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no stray .env is read
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("LLM_LEDGER_PATH", str(tmp_path / "ledger.db"))
    monkeypatch.setenv("LLM_CACHE_PATH", str(tmp_path / "cache.db"))
    monkeypatch.setenv("OLLAMA_HOST", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    yield


@pytest.fixture(scope="session")
def simulator() -> Iterator:
    from leadfactory.llm.simulator import Simulator

    with Simulator() as sim:
        yield sim


@pytest.fixture
def sim(simulator):
    """The session's simulator, with faults and request logs cleared for this test."""
    simulator.clear_faults()
    simulator.reset_requests()
    yield simulator
    simulator.clear_faults()


@pytest.fixture
def sim_env(sim, monkeypatch):
    """Environment pointing all three built-in providers at the simulator."""
    for name, value in sim.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("OPENAI_API_KEY", SENTINEL_KEY)
    monkeypatch.setenv("ANTHROPIC_API_KEY", SENTINEL_KEY)
    for prefix in ("OPENAI", "ANTHROPIC", "OLLAMA"):
        monkeypatch.setenv(f"{prefix}_RETRY_DELAY", "0")
        monkeypatch.setenv(f"{prefix}_TIMEOUT", "2")
    return sim
