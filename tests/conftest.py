"""Shared fixtures: every user path goes to a temp dir, no real keys, a simulator."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from .logging_state import logging_left_as_found

SENTINEL_KEY = "sk-SENTINEL-7f3a9c1e5b2d4068"

# Environment variables that could point a test at a real account or a real file.
ISOLATED_PREFIXES = ("OPENAI_", "ANTHROPIC_", "OLLAMA_", "LLM_")


def isolated_variables(home: Path) -> dict[str, str]:
    """Variables that send every user path under ``home`` and Ollama where nothing listens."""
    return {
        "HOME": str(home / "home"),
        "XDG_DATA_HOME": str(home / "data"),
        "XDG_CACHE_HOME": str(home / "cache"),
        "LLM_LEDGER_PATH": str(home / "ledger.db"),
        "LLM_CACHE_PATH": str(home / "cache.db"),
        "OLLAMA_HOST": "http://127.0.0.1:9",  # nothing listens: examples start the simulator
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    }


def child_environment(home: Path) -> dict[str, str]:
    """For a subprocess: this environment without keys or provider settings, paths in ``home``."""
    home.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(ISOLATED_PREFIXES)}
    env.update(isolated_variables(home), PYTHONUNBUFFERED="1")
    return env


def list_cost(client, provider: str, prompt_tokens: int, completion_tokens: int) -> float:
    """What the client charges for these counts on ``provider``'s own model, nothing cached:
    prompt tokens at the model's input price plus completion tokens at its output price."""
    from leadfactory.llm.pricing import price_for

    price = price_for(client.config.providers[provider])
    return prompt_tokens * price.input + completion_tokens * price.output


@pytest.fixture(autouse=True)
def isolated_environment(tmp_path, monkeypatch) -> Iterator[None]:
    """No test sees the developer's keys, .env, ledger or cache."""
    for name in list(os.environ):
        if name.startswith(ISOLATED_PREFIXES):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no stray .env is read
    for name, value in isolated_variables(tmp_path).items():
        monkeypatch.setenv(name, value)
    with logging_left_as_found():  # a test that configures logging does not leak it
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


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key prefix of this test's own on the test Redis (skips without one); its keys
    are deleted afterwards."""
    import uuid

    from tests.services import redis_keys_gone, require_redis

    url = require_redis()
    prefix = f"lf-test:{uuid.uuid4().hex[:12]}:"
    yield prefix
    redis_keys_gone(url, prefix)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema, dropped after (see services.py)."""
    from .services import postgres_schema

    with postgres_schema() as url:
        yield url
