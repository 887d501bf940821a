"""Replay of recorded provider traffic (cassettes/), with no simulator and no network.

The cassettes were recorded by ``python -m tests.record_cassettes`` (see cassettes/README.md)
with every URI moved to the vendor's real host, so here the client runs with its default
URLs (https://api.openai.com/v1, https://api.anthropic.com, http://localhost:11434) and
vcrpy answers in ``record_mode="none"``. Two guards make an escape loud instead of silent:

* the socket guard refuses every ``connect`` and DNS lookup, so a request vcrpy did not
  intercept fails (and fails the test) instead of reaching, or hanging on, the network;
* the miss guard records every CannotOverwriteExistingCassetteException vcrpy raises. Our
  client reports that error as a failure in this process (LLMProviderError naming it, never
  retried; see test_unrecorded_request_*), but still falls back, so without this guard a
  request missing from a cassette could be answered by the next provider's recording, and
  still pass.
"""

from __future__ import annotations

import asyncio
import json
import socket
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from vcr.errors import CannotOverwriteExistingCassetteException
from vcr.serialize import deserialize
from vcr.serializers import yamlserializer

from leadfactory.llm import AllProvidersFailedError, LLMProviderError
from leadfactory.llm.classify import retry_same_provider

from . import conftest
from .record_cassettes import (
    FILTER_HEADERS,
    INVALID_KEY,
    MODES,
    PRICES,
    PROMPT,
    REAL_BASE_URLS,
    SCENARIOS,
    SCENARIOS_BY_NAME,
    SENTINEL_KEY,
    Scenario,
    all_cassettes,
    ask,
    build_client,
    cassette_path,
    cassette_vcr,
    expected_attempts,
    expected_generation_providers,
    find_secrets,
    generation_requests,
    provider_of,
)

REPLAY_KEYS = {"openai": "sk-replay-not-a-real-key", "anthropic": "sk-replay-not-a-real-key"}
"""Replay needs a key for the client to consider openai and anthropic configured; it is
not the recording key, and is never compared (headers are not matched)."""
REPLAY_BASE_URLS = {"openai": None, "anthropic": None, "ollama": REAL_BASE_URLS["ollama"]}
SPAIN = [{"role": "user", "content": "What is the capital of Spain?"}]
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


def wire_answer(protocol: str, response: dict[str, Any]) -> tuple[str, int, int]:
    """(text, prompt tokens, completion tokens) as the provider sent them, per wire protocol."""
    body = json.loads(response["body"]["string"])
    if protocol in ("openai", "ollama"):  # Ollama through its OpenAI-compatible API
        usage = body["usage"]
        text = body["choices"][0]["message"]["content"]
        return text, usage["prompt_tokens"], usage["completion_tokens"]
    text = "".join(b["text"] for b in body["content"] if b.get("type") == "text")
    return text, body["usage"]["input_tokens"], body["usage"]["output_tokens"]


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


def cause_chain(error: BaseException) -> list[BaseException]:
    chain, seen = [], set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def vcr_miss_in(error: BaseException) -> CannotOverwriteExistingCassetteException:
    misses = [
        e for e in cause_chain(error) if isinstance(e, CannotOverwriteExistingCassetteException)
    ]
    assert misses, f"no CannotOverwriteExistingCassetteException behind {error!r}"
    return misses[0]


# -- the cassettes themselves --------------------------------------------------------


def test_every_scenario_has_a_cassette_per_client_path_and_nothing_else():
    expected = {cassette_path(s.name, mode) for s in SCENARIOS for mode in MODES}
    assert set(all_cassettes()) == expected
    for path in expected:
        meta = load(path).metadata["recording"]
        assert meta["scenario"] == path.stem and meta["mode"] == path.parent.name
        assert meta["source"] in ("simulator", "real")
        assert meta["versions"]["litellm"]


def test_no_key_is_in_any_cassette():
    assert SENTINEL_KEY == conftest.SENTINEL_KEY  # the key the recordings were made with
    assert find_secrets(all_cassettes(), [SENTINEL_KEY, INVALID_KEY, "SENTINEL"]) == []
    for path in all_cassettes():
        for request in load(path).requests:
            present = {name.lower() for name in request.headers}
            assert not present & set(FILTER_HEADERS), f"{path}: {present & set(FILTER_HEADERS)}"


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
@pytest.mark.parametrize("mode", MODES)
def test_recorded_requests_go_to_the_vendors_real_hosts(scenario, mode):
    recording = load(scenario.cassette(mode))
    statuses = {
        id(request): response["status"]["code"]
        for request, response in zip(recording.requests, recording.responses, strict=True)
    }
    for request in recording.requests:
        assert provider_of(request.uri) in scenario.providers, request.uri
        assert request.method == "POST"
        assert request.headers.get("host") in (None, urlsplit(request.uri).netloc)
    generation = generation_requests(recording.requests)
    assert [p for p, _ in generation] == expected_generation_providers(scenario)
    for provider, request in generation:
        want = scenario.status if provider == scenario.failing else 200
        assert statuses[id(request)] == want
    # Nothing else: no side request such as LiteLLM's Ollama /api/show probe.
    others = [r for r in recording.requests if all(r is not g for _, g in generation)]
    assert others == []


# -- replay ----------------------------------------------------------------------------


COUNTS = ("prompt_tokens", "completion_tokens", "total_tokens")


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
@pytest.mark.parametrize("mode", MODES)
def test_replay(scenario, mode):
    recording = load(scenario.cassette(mode))
    cassette, response = replay(scenario, mode)
    assert not isinstance(response, BaseException), repr(response)
    assert cassette.all_played and cassette.play_count == len(recording.requests)

    provider = scenario.answering
    assert response["provider"] == provider
    got = [(a["provider"], a["outcome"], a["error"]) for a in response["attempts"]]
    assert got == expected_attempts(scenario)
    for attempt in response["attempts"][:-1]:
        assert f"HTTP {scenario.status}" in attempt["detail"]
        assert "How to fix" not in attempt["detail"]  # vcrpy's miss message
    assert response["attempts"][-1]["detail"] is None

    text, prompt_tokens, completion_tokens = wire_answer(provider, recording.responses[-1])
    assert response["choices"][0]["message"] == {"role": "assistant", "content": text}
    if recording.metadata["recording"]["source"] == "simulator":
        assert text == f"Simulated {provider} reply to: What is the capital of France?"
    usage = response["usage"]
    assert {key: usage[key] for key in COUNTS} == {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
    # the detail counts LiteLLM reports are kept (OpenAI's shape); nothing was cached here
    assert set(usage) <= {*COUNTS, "prompt_tokens_details", "completion_tokens_details"}
    cached = usage.get("prompt_tokens_details", {})
    assert cached.get("cached_tokens", 0) == cached.get("cache_write_tokens", 0) == 0
    assert prompt_tokens > 0 and completion_tokens > 0
    total = prompt_tokens + completion_tokens
    assert response["cost"] == pytest.approx(total / 1000 * PRICES[provider])
    assert response["cached"] is False and response["object"] == "chat.completion"
    json.dumps(response)


class _Spy:
    """Which HTTP client class and transport each replayed request went through."""

    def __init__(self, monkeypatch) -> None:
        import httpx
        import httpx2

        self.seen: list[tuple[str, str]] = []
        for module in (httpx, httpx2):
            for cls in (module.Client, module.AsyncClient):
                self._wrap(monkeypatch, cls, f"{module.__name__}.{cls.__name__}")

    def _wrap(self, monkeypatch, cls, label: str) -> None:
        original, seen = cls.send, self.seen

        def note(client, request) -> None:
            transport = client._transport_for_url(request.url)
            seen.append((label, type(transport).__name__))

        if cls.__name__ == "AsyncClient":

            async def send(self, request, **kwargs):
                note(self, request)
                return await original(self, request, **kwargs)

        else:

            def send(self, request, **kwargs):
                note(self, request)
                return original(self, request, **kwargs)

        monkeypatch.setattr(cls, "send", send)


@pytest.mark.parametrize("scenario", OK_SCENARIOS, ids=lambda s: s.name)
@pytest.mark.parametrize(
    ("mode", "transport"),
    [
        ("sync", ("httpx.Client", "_DeadlineTransport")),
        ("async", ("httpx.AsyncClient", "_AsyncDeadlineTransport")),
    ],
)
def test_each_route_uses_the_http_client_vcrpy_patches(monkeypatch, scenario, mode, transport):
    """Every route's call goes through this process's legacy ``httpx.Client`` or
    ``httpx.AsyncClient`` (:mod:`leadfactory.llm.http_clients`, handed to LiteLLM per
    call), whose sending vcrpy's httpx patcher replaces. The openai SDK's own httpx2
    client is not used, nor LiteLLM's cached clients (its aiohttp bridge for async). If
    this changes, this test says so; the socket guard proves interception either way."""
    spy = _Spy(monkeypatch)
    cassette, response = replay(scenario, mode)
    assert not isinstance(response, BaseException), repr(response)
    assert spy.seen == [transport]


# -- requests the cassette does not hold -------------------------------------------------


VCR_MISS = "vcr.errors.CannotOverwriteExistingCassetteException"


@pytest.mark.parametrize("scenario", OK_SCENARIOS, ids=lambda s: s.name)
@pytest.mark.parametrize("mode", MODES)
def test_unrecorded_request_fails_with_the_vcr_error_in_the_cause_chain(guard, scenario, mode):
    """A prompt the cassette does not hold fails, without touching the network.

    LiteLLM 1.110.2 wraps vcrpy's error as InternalServerError (openai, anthropic) or
    APIConnectionError (ollama), both with a synthetic status 500. The client sees that no
    HTTP response is behind it and reports a failure in this process: LLMProviderError with
    no status, naming vcrpy's exception, never retried. The original is kept as the cause.
    """
    cassette, error = replay(scenario, mode, messages=SPAIN)
    assert isinstance(error, AllProvidersFailedError), repr(error)
    provider = scenario.answering
    classified = error.provider_errors[provider]
    assert type(classified) is LLMProviderError and classified.status_code is None
    assert str(classified).startswith(
        f"{provider}: failed in this process, not at the provider: {VCR_MISS}: "
    )
    assert "HTTP 500" not in str(classified)
    assert classified.metadata["local_error"] == VCR_MISS
    assert not retry_same_provider(classified)
    miss = vcr_miss_in(classified)
    assert miss.reason == "no_match" and b"Spain" in miss.failed_request.body
    assert guard.take_misses() == [miss]
    assert cassette.play_count == 0


@pytest.mark.parametrize("mode", MODES)
def test_unrecorded_request_is_not_retried_but_the_fallback_still_answers(guard, mode):
    """openai's request changed (another model), so it is not in the cassette. openai may
    retry once (its recorded 500 was retried), but vcrpy's error is not a 500: it is
    reported once, not retried. The fallback to anthropic, whose recording matches, still
    answers, which is what the miss guard exists for."""
    scenario = SCENARIOS_BY_NAME["openai_500_retried_then_falls_back_to_anthropic"]
    assert scenario.retries == 1
    cassette, response = replay(scenario, mode, models={"openai": "gpt-4o"})
    assert not isinstance(response, BaseException), repr(response)
    assert response["provider"] == "anthropic"
    attempts = [(a["provider"], a["outcome"], a["error"]) for a in response["attempts"]]
    assert attempts == [("openai", "error", "LLMProviderError"), ("anthropic", "success", None)]
    detail = response["attempts"][0]["detail"]
    assert detail.startswith(f"openai: failed in this process, not at the provider: {VCR_MISS}")
    # What tells the masked run from the recorded one: the recorded 500s were never played,
    # and vcrpy raised one miss (the guard would fail any other test on it).
    assert not cassette.all_played
    (miss,) = guard.take_misses()
    assert b"gpt-4o" in miss.failed_request.body


# -- the guard itself ------------------------------------------------------------------


def test_the_socket_guard_stops_every_http_client(guard):
    import aiohttp
    import httpx
    import httpx2

    with httpx.Client() as client, pytest.raises(Exception):  # noqa: B017 - wrapped variously
        client.get("https://api.openai.com/v1/models")
    with httpx2.Client() as client, pytest.raises(Exception):  # noqa: B017
        client.get("http://127.0.0.2:11434/api/tags")
    with pytest.raises(Exception):  # noqa: B017
        urllib.request.urlopen("http://127.0.0.1:9/", timeout=1)  # noqa: S310

    async def async_clients() -> None:
        async with httpx.AsyncClient() as client:
            with pytest.raises(Exception):  # noqa: B017
                await client.get("https://api.anthropic.com/v1/messages")
        async with aiohttp.ClientSession() as session:
            with pytest.raises(Exception):  # noqa: B017
                await session.get("http://localhost:11434/api/chat")

    asyncio.run(async_clients())
    blocked = guard.take_blocked()
    for host in ("api.openai.com", "127.0.0.2", "127.0.0.1", "api.anthropic.com", "localhost"):
        assert any(host in attempt for attempt in blocked), (host, blocked)


@pytest.mark.parametrize("mode", MODES)
def test_the_guard_catches_a_route_vcrpy_does_not_intercept(guard, mode):
    """Without vcrpy's patcher for the library a route really uses, replay escapes to the
    network; the guard refuses the connection at once (no hang) and reports it."""
    scenario = SCENARIOS_BY_NAME["openai_ok"]
    cassette, error = replay(scenario, mode, skip_patchers=("httpx",))
    assert isinstance(error, AllProvidersFailedError), repr(error)
    assert cassette.play_count == 0
    blocked = guard.take_blocked()
    assert blocked and all("api.openai.com" in b for b in blocked), blocked
