"""What a rejected request must look like: our own validation error naming the field, no
provider called, no ledger row. ``call_sync`` and ``call_async`` send a request and return
the error it raised; ``assert_rejected_for_free`` checks it; the ``client`` fixture is a
client pointed at the simulator, caching on as users get it. Used by
tests/test_bad_input*.py and tests/test_local_errors.py.
"""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import HealthCheck

from leadfactory.llm import (
    LLMClient,
    LLMConfig,
    LLMValidationError,
)

PROTOCOLS = ["openai", "anthropic", "ollama"]
USER = {"role": "user", "content": "What is the capital of France?"}
FIXTURES_OK = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]


# -- the property ----------------------------------------------------------------------------


@pytest.fixture
def client(sim_env):
    client = LLMClient(LLMConfig())  # caching on, as users get it
    yield client
    client.close()


def assert_rejected_for_free(
    error: BaseException | None, field: str, client: LLMClient, sim, arguments: dict
) -> None:
    shown = f"{arguments!r:.300}"
    assert error is not None, f"accepted: {shown}"
    assert isinstance(error, LLMValidationError), f"{type(error).__name__}: {error} for {shown}"
    assert error.metadata.get("field") == field, f"{error.metadata} for {shown}"
    assert field in str(error), f"{error} does not name {field}"
    assert error.provider is None
    assert [sim.request_count(p) for p in PROTOCOLS] == [0, 0, 0]
    assert client.ledger.rows() == []


def call_sync(client: LLMClient, arguments: dict) -> BaseException | None:
    try:
        client.chat_completion(**arguments)
    except Exception as error:
        return error
    return None


def call_async(client: LLMClient, arguments: dict) -> BaseException | None:
    try:
        asyncio.run(client.achat_completion(**arguments))
    except Exception as error:
        return error
    return None
