"""The ``config`` fixture of the ledger-timing tests: OpenAI alone (the other built-in
providers off), at the simulator, priced at $1e-5 a token in and out, not logged, no
cache. Import it as ``from .openai_only import config as config``."""

from __future__ import annotations

import pytest

from leadfactory.llm import LLMConfig


@pytest.fixture
def config(sim_env, monkeypatch) -> LLMConfig:
    monkeypatch.setenv("OPENAI_COST_PER_1K_TOKENS", "0.01")  # $1e-5 a token, in and out
    monkeypatch.setenv("LLM_LOG_REQUESTS", "false")
    config = LLMConfig(enable_caching=False)
    for name in ("ollama", "anthropic"):
        config.providers[name].enabled = False
    return config
