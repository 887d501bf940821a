"""Replay of recorded provider traffic (cassettes/), with no simulator and no network.

The cassettes were recorded by ``python -m tests.record_cassettes`` (see cassettes/README.md)
with every URI moved to the vendor's real host. Here: every scenario has a cassette per
client path and nothing else, none holds a key, every recorded request went to the vendor's
real host; each replays to the recorded answer, attempts, usage and cost, through the HTTP
client vcrpy patches. The guards every replay runs under are in tests/cassette_replay.py;
requests a cassette does not hold, and the guards themselves, in
tests/test_cassettes_unrecorded.py.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

import pytest

from . import conftest
from .cassette_io import (
    FILTER_HEADERS,
    find_secrets,
    generation_requests,
    provider_of,
)
from .cassette_replay import OK_SCENARIOS, load, replay

# fixtures, imported so that pytest finds them in this module
from .cassette_replay import guard as guard
from .cassette_scenarios import (
    INVALID_KEY,
    MODES,
    PRICES,
    SCENARIOS,
    SENTINEL_KEY,
    all_cassettes,
    cassette_path,
    expected_attempts,
    expected_generation_providers,
)


def wire_answer(protocol: str, response: dict[str, Any]) -> tuple[str, int, int]:
    """(text, prompt tokens, completion tokens) as the provider sent them, per wire protocol."""
    body = json.loads(response["body"]["string"])
    if protocol in ("openai", "ollama"):  # Ollama through its OpenAI-compatible API
        usage = body["usage"]
        text = body["choices"][0]["message"]["content"]
        return text, usage["prompt_tokens"], usage["completion_tokens"]
    text = "".join(b["text"] for b in body["content"] if b.get("type") == "text")
    return text, body["usage"]["input_tokens"], body["usage"]["output_tokens"]


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
        ("async", ("httpx.AsyncClient", "_AiohttpDeadlineTransport")),
    ],
)
def test_each_route_uses_the_http_client_vcrpy_patches(monkeypatch, scenario, mode, transport):
    """Every route's call goes through this process's legacy ``httpx.Client`` or
    ``httpx.AsyncClient`` (:mod:`leadfactory.llm.http_clients`, handed to LiteLLM per
    call), whose sending vcrpy's httpx patcher replaces. The openai SDK's own httpx2
    client is not used, nor LiteLLM's cached clients; the async one sends through
    LiteLLM's aiohttp transport (:mod:`leadfactory.llm.http_async`), below the patched
    ``send``. If this changes, this test says so; the socket guard proves interception
    either way."""
    spy = _Spy(monkeypatch)
    cassette, response = replay(scenario, mode)
    assert not isinstance(response, BaseException), repr(response)
    assert spy.seen == [transport]
