"""The streaming fault matrix, shared by the sync and async end-to-end tests.

Each wire protocol (OpenAI SSE, Anthropic SSE, Ollama's ``/v1`` SSE and its native NDJSON
``/api/chat``) streams through LiteLLM's real code from the simulator. A fault before
the first content must end in the backup provider's whole answer with no text of the
failing one; a fault after it in ``LLMStreamInterruptedError`` with exactly the text
delivered. Either way the ledger holds one settled row per attempt.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from leadfactory.llm import LLMClient, LLMConfig, LLMStreamInterruptedError
from leadfactory.llm.simulator import Fault
from leadfactory.llm.simulator.streaming import StreamFault

from .conftest import list_cost

USER = [{"role": "user", "content": "Tell me about Paris"}]
ROUTES = ["openai", "anthropic", "ollama", "ollama_chat"]
PROVIDER = {
    "openai": "openai",
    "anthropic": "anthropic",
    "ollama": "ollama",
    "ollama_chat": "ollama",
}
BACKUP = {"openai": "ollama", "anthropic": "openai", "ollama": "openai", "ollama_chat": "openai"}
FAILING_REPLY = "alpha beta gamma delta epsilon zeta eta theta"
BACKUP_REPLY = "one two three four five"
TIMEOUT = 1.0  # the first-token or idle timeout, in the tests of those timeouts
TIMED = {"stall", "slow_first"}  # the faults those timeouts end


@pytest.fixture(autouse=True)
def replies_restored(simulator):
    """The session's simulator answers with its echo again after each test."""
    yield
    for name in ("openai", "anthropic", "ollama"):
        simulator.set_reply(name, None)


def pieces(text: str) -> list[str]:
    """How the simulator splits a reply into content frames."""
    return [p for p in re.split(r"(?<=\s)(?=\S)", text) if p]


def make_client(
    route: str,
    *,
    cache: bool = False,
    retries: int = 1,
    first_token: float = 30.0,
    idle: float = 30.0,
) -> LLMClient:
    """The failing route's provider first, its backup second (timeouts long unless a
    test is about them: the machine may be loaded)."""
    failing, backup = PROVIDER[route], BACKUP[route]
    config = LLMConfig(fallback_strategy="quality_optimized", enable_caching=cache)
    for name in list(config.providers):
        if name not in (failing, backup):
            del config.providers[name]
    provider = config.providers[failing]
    provider.priority, provider.max_retries = 10, retries
    provider.first_token_timeout, provider.stream_idle_timeout = first_token, idle
    if route == "ollama_chat":
        provider.default_model = "ollama_chat/llama3:8b"
    return LLMClient(config)


def set_replies(sim: Any, route: str) -> None:
    sim.set_reply(PROVIDER[route], FAILING_REPLY)
    sim.set_reply(BACKUP[route], BACKUP_REPLY)


# name -> how to break the failing provider before its first content
BEFORE: dict[str, Callable[[Any, str], None]] = {
    "status_500": lambda sim, p: sim.set_fault(p, Fault.SERVER_ERROR),
    "status_429": lambda sim, p: sim.set_fault(p, Fault.RATE_LIMIT, retry_after=0),
    "status_401": lambda sim, p: sim.set_fault(p, Fault.UNAUTHORIZED),
    "reset": lambda sim, p: sim.set_fault(p, Fault.RESET),
    "error_event": lambda sim, p: sim.set_stream_fault(p, StreamFault.ERROR_EVENT),
    "cut": lambda sim, p: sim.set_stream_fault(p, StreamFault.CUT),
    "stall": lambda sim, p: sim.set_stream_fault(p, StreamFault.STALL),
    "slow_first": lambda sim, p: sim.set_stream_fault(p, StreamFault.SLOW_FIRST, delay=3.0),
    "ends_early": lambda sim, p: sim.set_stream_fault(p, StreamFault.END_EARLY),
    "empty": lambda sim, p: sim.set_reply(p, ""),
}
# name -> the fault after two content chunks
AFTER = {
    "cut": StreamFault.CUT,
    "error_event": StreamFault.ERROR_EVENT,
    "stall": StreamFault.STALL,
    "ends_early": StreamFault.END_EARLY,
}


def timeouts(fault: str, after: bool) -> dict[str, float]:
    """The short timeout a fault's test needs (the first-token one before the first
    content, the idle one after), or none."""
    if fault not in TIMED:
        return {}
    return {"idle": TIMEOUT} if after else {"first_token": TIMEOUT}


def check_fell_back(sim: Any, client: LLMClient, route: str, text: str, summary: dict) -> None:
    """The backup's whole answer, nothing of the failing provider's, a row per attempt."""
    failing, backup = PROVIDER[route], BACKUP[route]
    assert text == BACKUP_REPLY
    assert not set(FAILING_REPLY.split()) & set(text.split())
    assert summary["provider"] == backup
    attempts = summary["attempts"]
    assert attempts[-1]["provider"] == backup and attempts[-1]["outcome"] == "success"
    failed = [a for a in attempts if a["provider"] == failing]
    assert failed and all(a["outcome"] == "error" for a in failed)
    check_rows(client, attempts)
    usage = summary["usage"]
    assert usage["completion_tokens"] == len(BACKUP_REPLY.split())
    assert summary["cost"] == pytest.approx(
        list_cost(client, backup, usage["prompt_tokens"], usage["completion_tokens"])
    )


def check_interrupted(
    sim: Any, client: LLMClient, route: str, text: str, error: LLMStreamInterruptedError
) -> None:
    """Exactly the two chunks delivered, nothing asked of the backup, one estimated row."""
    failing = PROVIDER[route]
    delivered = "".join(pieces(FAILING_REPLY)[:2])
    assert text == delivered and error.partial_text == delivered
    assert error.provider == failing and error.tool_calls == []
    assert [a["outcome"] for a in error.attempts] == ["error"]
    assert error.attempts[0]["error"] == "LLMStreamInterruptedError"
    assert error.usage["estimated"] is True and error.usage["completion_tokens"] > 0
    assert sim.request_count(BACKUP[route]) == 0
    [row] = check_rows(client, error.attempts)
    assert row["error_class"] == "LLMStreamInterruptedError" and row["estimated"] == 1
    assert row["completion_tokens"] == error.usage["completion_tokens"]
    assert row["prompt_tokens"] == error.usage["prompt_tokens"]
    assert row["cost_usd"] == pytest.approx(
        list_cost(client, failing, row["prompt_tokens"], row["completion_tokens"])
    )


def check_rows(client: LLMClient, attempts: list[dict]) -> list[dict]:
    """One settled ledger row per attempt, with its outcome, and no pending row."""
    rows = client.ledger.rows()
    assert [r["outcome"] for r in rows] == [a["outcome"] for a in attempts]
    assert [r["provider"] for r in rows] == [a["provider"] for a in attempts]
    return rows
