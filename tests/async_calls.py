"""Shared by the async end-to-end tests: run one ``achat_completion`` to its end, and
LiteLLM imported once per module (so timing tests measure calls, not a 4 s import)."""

from __future__ import annotations

import asyncio

import pytest

from leadfactory.llm import LLMClient


def achat(client: LLMClient, *args, **kwargs) -> dict:
    return asyncio.run(client.achat_completion(*args, **kwargs))


@pytest.fixture(scope="module", autouse=True)
def litellm_loaded():
    """Import LiteLLM once, so the timing tests measure calls, not a 4 s import."""
    from leadfactory.llm.providers import load_litellm

    load_litellm()
