"""Requests to send a simulator, for the simulator's own tests: a minimal non-streaming
request per wire protocol, and a fresh ``Simulator`` per test (in a module that imports
it, the ``sim`` fixture here replaces the session-wide one of conftest.py, for
``sim_env`` too, so a test may stop, fault or restart it freely), with a plain-HTTP
``client``. Used by tests/test_simulator.py,
test_simulator_faults.py, test_simulator_transport.py, test_simulator_server.py and
test_simulator_offline.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from leadfactory.llm.simulator import Simulator

MESSAGES = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "hello there friend"},
]
# protocol -> (path under the base URL, a minimal non-streaming request body)
REQUESTS: dict[str, tuple[str, dict[str, Any]]] = {
    "openai": ("/chat/completions", {"model": "gpt-4", "messages": MESSAGES}),
    "anthropic": (
        "/v1/messages",
        {"model": "claude-3", "max_tokens": 100, "messages": MESSAGES[1:]},
    ),
    "ollama": ("/api/chat", {"model": "llama3:8b", "messages": MESSAGES, "stream": False}),
}
PROTOCOLS = list(REQUESTS)
REPLY = "Simulated {} reply to: hello there friend"


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator() as s:
        yield s


def new_client(timeout: float = 5) -> httpx.Client:
    """A plain-HTTP client (verify=False skips loading CA certificates, which is slow)."""
    return httpx.Client(timeout=timeout, verify=False)


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with new_client(5) as c:
        yield c


def call(sim: Simulator, client: httpx.Client, provider: str, **extra: Any) -> httpx.Response:
    path, body = REQUESTS[sim_protocol(sim, provider)]
    return client.post(sim.base_url(provider) + path, json={**body, **extra})


def sim_protocol(sim: Simulator, provider: str) -> str:
    return provider if provider in REQUESTS else "openai"


def port_of(url: str) -> int:
    return httpx.URL(url).port or 0
