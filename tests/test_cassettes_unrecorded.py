"""Requests a cassette does not hold, and the guards that catch an escape.

A prompt or model the cassette does not hold fails without touching the network: the
client reports vcrpy's error as a failure in this process (LLMProviderError naming it,
the original in the cause chain, never retried), and the fallback may still answer, which
the miss guard catches. The socket guard stops every HTTP client, and a route vcrpy does
not intercept is refused at once and reported. The guards are in tests/cassette_replay.py.
"""

from __future__ import annotations

import asyncio
import urllib.request

import pytest
from vcr.errors import CannotOverwriteExistingCassetteException

from leadfactory.llm import AllProvidersFailedError, LLMProviderError
from leadfactory.llm.classify import retry_same_provider

from .cassette_replay import OK_SCENARIOS, replay

# fixtures, imported so that pytest finds them in this module
from .cassette_replay import guard as guard
from .cassette_scenarios import (
    MODES,
    SCENARIOS_BY_NAME,
)

SPAIN = [{"role": "user", "content": "What is the capital of Spain?"}]


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
    """Without vcrpy's patchers for the libraries a route really uses (httpx, and aiohttp
    below the async client), replay escapes to the network; the guard refuses the
    connection at once (no hang) and reports it."""
    scenario = SCENARIOS_BY_NAME["openai_ok"]
    cassette, error = replay(scenario, mode, skip_patchers=("httpx", "aiohttp"))
    assert isinstance(error, AllProvidersFailedError), repr(error)
    assert cassette.play_count == 0
    blocked = guard.take_blocked()
    assert blocked and all("api.openai.com" in b for b in blocked), blocked
