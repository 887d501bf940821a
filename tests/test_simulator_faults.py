"""The simulator's faults that answer: error statuses and malformed or incomplete answers.

Each error fault on each protocol, with the vendor's status, body and headers (OpenAI's
messages, rate-limit headers); malformed bodies; usage faults reporting their count, no
usage, empty choices, truncated answers; faults limited to a number of times, sparing
the probes, and validated when set.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from leadfactory.llm.simulator import Fault, Simulator

from .simulator_requests import MESSAGES, PROTOCOLS, REPLY, call

# fixtures, imported so that pytest finds them in this module
from .simulator_requests import client as client
from .simulator_requests import sim as sim

# --- error faults -------------------------------------------------------------------------

# fault: (status, OpenAI type, OpenAI code, Anthropic type, Ollama message fragment)
ERROR_FAULTS = {
    Fault.RATE_LIMIT: (429, "requests", "rate_limit_exceeded", "rate_limit_error", "rate limit"),
    Fault.INSUFFICIENT_QUOTA: (
        429,
        "insufficient_quota",
        "insufficient_quota",
        "insufficient_quota",
        "insufficient quota",
    ),
    Fault.BAD_REQUEST: (400, "invalid_request_error", None, "invalid_request_error", "invalid"),
    Fault.UNAUTHORIZED: (
        401,
        "invalid_request_error",
        "invalid_api_key",
        "authentication_error",
        "unauthorized",
    ),
    Fault.FORBIDDEN: (403, "invalid_request_error", None, "permission_error", "forbidden"),
    Fault.NOT_FOUND: (
        404,
        "invalid_request_error",
        "model_not_found",
        "not_found_error",
        'model "llama3:8b" not found, try pulling it first',
    ),
    Fault.SERVER_ERROR: (500, "server_error", None, "api_error", "error"),
    Fault.UNAVAILABLE: (503, "server_error", None, "overloaded_error", "busy"),
}


@pytest.mark.parametrize("provider", PROTOCOLS)
@pytest.mark.parametrize("fault", list(ERROR_FAULTS))
def test_error_faults(sim: Simulator, client: httpx.Client, provider: str, fault: Fault) -> None:
    status, openai_type, openai_code, anthropic_type, ollama_text = ERROR_FAULTS[fault]
    sim.set_fault(provider, fault)
    r = call(sim, client, provider)
    assert r.status_code == status
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    if provider == "openai":
        assert set(body["error"]) == {"message", "type", "param", "code"}
        assert (body["error"]["type"], body["error"]["code"]) == (openai_type, openai_code)
        assert body["error"]["message"]
    elif provider == "anthropic":
        assert body["type"] == "error"
        assert body["error"]["type"] == anthropic_type
        assert body["error"]["message"]
    else:
        assert set(body) == {"error"}
        assert ollama_text in body["error"]
    if fault is Fault.RATE_LIMIT:
        assert r.headers["retry-after"] == "1"
    else:
        assert "retry-after" not in r.headers
    assert sim.request_count(provider) == 1


def test_openai_error_messages(sim: Simulator, client: httpx.Client) -> None:
    sim.set_fault("openai", Fault.UNAVAILABLE, times=1)
    assert "The engine is currently overloaded" in call(sim, client, "openai").text
    sim.set_fault("openai", "404", times=1)
    assert "`gpt-4` does not exist" in call(sim, client, "openai").json()["error"]["message"]
    sim.set_fault("openai", Fault.INSUFFICIENT_QUOTA, times=1)
    assert call(sim, client, "openai").json()["error"]["message"] == (
        "You exceeded your current quota, please check your plan and billing details."
    )


def test_rate_limit_headers(sim: Simulator, client: httpx.Client) -> None:
    sim.set_fault("openai", Fault.RATE_LIMIT, retry_after=2)
    assert call(sim, client, "openai").headers["retry-after"] == "2"
    sim.set_fault("openai", "rate_limit", retry_after=0.5)
    assert call(sim, client, "openai").headers["retry-after"] == "0.5"
    date = "Wed, 21 Oct 2015 07:28:00 GMT"
    sim.set_fault("ollama", "rate_limit", retry_after=date)
    assert call(sim, client, "ollama").headers["retry-after"] == date
    sim.set_fault("anthropic", "rate_limit")
    r = call(sim, client, "anthropic")
    assert r.headers["anthropic-ratelimit-requests-remaining"] == "0"
    assert r.headers["retry-after"] == "1"


# --- broken-transport faults --------------------------------------------------------------


@pytest.mark.parametrize("provider", PROTOCOLS)
def test_malformed(sim: Simulator, client: httpx.Client, provider: str) -> None:
    sim.set_fault(provider, Fault.MALFORMED)
    r = call(sim, client, provider)
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    with pytest.raises(json.JSONDecodeError):
        r.json()


# protocol -> where a non-streamed answer keeps (its text, its completion count)
ANSWER_FIELDS = {
    "openai": (("choices", 0, "message", "content"), ("usage", "completion_tokens")),
    "anthropic": (("content", 0, "text"), ("usage", "output_tokens")),
    "ollama": (("message", "content"), ("eval_count",)),
}


def dig(body: Any, path: tuple) -> Any:
    for step in path:
        body = body[step]
    return body


@pytest.mark.parametrize("provider", PROTOCOLS)
@pytest.mark.parametrize(
    ("fault", "count"),
    [(Fault.NEGATIVE_USAGE, -5), (Fault.HUGE_USAGE, 10**30), (Fault.ABSURD_USAGE, 2 * 10**12)],
)
def test_usage_faults_report_their_count(
    sim: Simulator, client: httpx.Client, provider: str, fault: Fault, count: int
) -> None:
    sim.set_fault(provider, fault, times=1)
    text, completion = ANSWER_FIELDS[provider]
    body = call(sim, client, provider).json()
    assert dig(body, completion) == count
    assert dig(body, text) == REPLY.format(provider)  # the answer itself is served
    if provider == "openai":
        assert body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"] + count
    words = len(REPLY.format(provider).split())
    assert dig(call(sim, client, provider).json(), completion) == words  # times=1: over


@pytest.mark.parametrize("provider", PROTOCOLS)
def test_no_usage_and_empty_choices(sim: Simulator, client: httpx.Client, provider: str) -> None:
    sim.set_fault(provider, Fault.NO_USAGE, times=1)
    body = call(sim, client, provider).json()
    assert "usage" not in body and "eval_count" not in body and "prompt_eval_count" not in body
    sim.set_fault(provider, Fault.EMPTY_CHOICES, times=1)
    body = call(sim, client, provider).json()
    if provider == "openai":
        assert body["choices"] == [] and body["usage"]["completion_tokens"] > 0
    else:  # no choices in these shapes: the answer's text is empty
        assert body.get("content", body.get("message", {}).get("content")) in ([], "")
    sim.set_fault("ollama", Fault.EMPTY_CHOICES, times=1)  # Ollama's OpenAI-compatible /v1
    v1 = client.post(
        sim.base_url("ollama") + "/v1/chat/completions",
        json={"model": "llama3:8b", "messages": MESSAGES},
    ).json()
    assert v1["choices"] == [] and v1["usage"]["prompt_tokens"] > 0


@pytest.mark.parametrize("provider", PROTOCOLS)
def test_truncated(sim: Simulator, client: httpx.Client, provider: str) -> None:
    sim.set_fault(provider, "truncated")
    with pytest.raises(httpx.RemoteProtocolError, match="incomplete|complete message body"):
        call(sim, client, provider)
    assert sim.request_count(provider) == 1


def test_times(sim: Simulator, client: httpx.Client) -> None:
    sim.set_fault("anthropic", "500", times=2)
    statuses = [call(sim, client, "anthropic").status_code for _ in range(3)]
    assert statuses == [500, 500, 200]
    sim.set_fault("openai", Fault.RESET, times=1)
    with pytest.raises(httpx.TransportError):
        call(sim, client, "openai")
    assert call(sim, client, "openai").status_code == 200


def test_faults_spare_probes(sim: Simulator, client: httpx.Client) -> None:
    sim.set_fault("ollama", "500", times=1)
    assert client.get(sim.base_url("ollama") + "/api/tags").status_code == 200
    assert call(sim, client, "ollama").status_code == 500
    assert sim.request_count("ollama") == 2


def test_set_fault_validates(sim: Simulator) -> None:
    with pytest.raises(ValueError):
        sim.set_fault("openai", "teapot")
    with pytest.raises(ValueError):
        sim.set_fault("openai", "500", times=0)
    with pytest.raises(KeyError, match="nope"):
        sim.set_fault("nope", Fault.OK)
    assert Fault("rate_limit") is Fault.RATE_LIMIT and Fault.SERVER_ERROR == "500"
