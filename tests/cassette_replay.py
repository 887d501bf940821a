"""Replaying a cassette with the network blocked: the guards every cassette test runs under,
and ``replay``, which runs a scenario's request against its cassette.

The client runs with its default URLs (https://api.openai.com/v1, https://api.anthropic.com,
http://localhost:11434) and vcrpy answers in ``record_mode="none"``. Two guards make an
escape loud instead of silent:

* the socket guard refuses every ``connect`` and DNS lookup, so a request vcrpy did not
  intercept fails (and fails the test) instead of reaching, or hanging on, the network;
* the miss guard records every CannotOverwriteExistingCassetteException vcrpy raises. Our
  client reports that error as a failure in this process (LLMProviderError naming it, never
  retried; see tests/test_cassettes_unrecorded.py), but still falls back, so without this
  guard a request missing from a cassette could be answered by the next provider's
  recording, and still pass.

Both are the autouse ``guard`` fixture: a module that replays imports it.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from vcr.errors import CannotOverwriteExistingCassetteException
from vcr.serialize import deserialize
from vcr.serializers import yamlserializer

from .cassette_io import (
    cassette_vcr,
)
from .cassette_scenarios import (
    PROMPT,
    REPLAY_BASE_URLS,
    SCENARIOS,
    Scenario,
    ask,
    build_client,
)

REPLAY_KEYS = {"openai": "sk-replay-not-a-real-key", "anthropic": "sk-replay-not-a-real-key"}
"""Replay needs a key for the client to consider openai and anthropic configured; it is
not the recording key, and is never compared (headers are not matched)."""


OK_SCENARIOS = [s for s in SCENARIOS if s.failing is None]


# -- guards ----------------------------------------------------------------------------


class NetworkBlocked(RuntimeError):
    """A request escaped vcrpy and tried to reach the network."""


@dataclass
class Guard:
    blocked: list[str] = field(default_factory=list)
    misses: list[CannotOverwriteExistingCassetteException] = field(default_factory=list)

    def take_misses(self) -> list[CannotOverwriteExistingCassetteException]:
        taken, self.misses = self.misses, []
        return taken

    def take_blocked(self) -> list[str]:
        taken, self.blocked = self.blocked, []
        return taken


@pytest.fixture(autouse=True)
def guard(monkeypatch) -> Iterator[Guard]:
    """No socket may connect and no name may be resolved; vcrpy misses are counted.

    Blocked attempts raise NetworkBlocked where they happen (LiteLLM may wrap it) and are
    listed; the test fails at teardown if any attempt or unexpected miss is left.
    """
    state = Guard()

    def refuse(what: str) -> None:
        state.blocked.append(what)
        raise NetworkBlocked(f"network access during a cassette test: {what}")

    def connect(sock, address):
        refuse(f"connect {address!r}")

    def connect_ex(sock, address):
        refuse(f"connect_ex {address!r}")

    def getaddrinfo(host, *args, **kwargs):
        refuse(f"getaddrinfo {host!r}")

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)

    original_init = CannotOverwriteExistingCassetteException.__init__

    def counting_init(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        state.misses.append(self)

    monkeypatch.setattr(CannotOverwriteExistingCassetteException, "__init__", counting_init)
    yield state
    assert not state.blocked, f"requests escaped the cassette: {state.blocked}"
    assert not state.misses, "requests missing from the cassette:\n" + "\n".join(
        str(miss).splitlines()[0] + f" {miss.failed_request}" for miss in state.misses
    )


# -- helpers ---------------------------------------------------------------------------


@dataclass
class Recording:
    requests: list[Any]
    responses: list[dict[str, Any]]
    metadata: dict[str, Any]


def load(path: Path) -> Recording:
    requests, responses, *meta = deserialize(path.read_text(encoding="utf-8"), yamlserializer)
    return Recording(list(requests), list(responses), meta[0] if meta else {})


def replay(
    scenario: Scenario,
    mode: str,
    messages=PROMPT,
    models: dict[str, str] | None = None,
    **options: Any,
) -> tuple[Any, dict[str, Any] | BaseException]:
    """Run the scenario's request against its cassette; (cassette, response or error)."""
    client = build_client(scenario, REPLAY_BASE_URLS, REPLAY_KEYS, models)
    options = {"record_mode": "none", "allow_playback_repeats": False, **options}
    try:
        with cassette_vcr().use_cassette(str(scenario.cassette(mode)), **options) as cassette:
            try:
                return cassette, ask(client, mode, messages)
            except Exception as error:
                return cassette, error
    finally:
        client.close()
