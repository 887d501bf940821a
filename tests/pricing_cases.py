"""Shared by the pricing tests: each test decides its prices anew, and the usage
payload of OpenAI's reasoning model with cached tokens, as OpenAI reports it.
"""

from __future__ import annotations

import pytest

from leadfactory.llm import pricing


@pytest.fixture(autouse=True)
def fresh_decisions():
    """Each test decides its prices anew (some replace the map)."""
    pricing._resolve.cache_clear()
    yield
    pricing._resolve.cache_clear()


# OpenAI's reasoning model o3-mini, as OpenAI reports it (LiteLLM passes it through).
OPENAI_CACHED_REASONING = {
    "prompt_tokens": 2000,
    "completion_tokens": 500,
    "total_tokens": 2500,
    "prompt_tokens_details": {"cached_tokens": 1200, "audio_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 300, "audio_tokens": 0},
}
