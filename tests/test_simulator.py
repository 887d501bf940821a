"""Tests for leadfactory.llm.simulator: wire shapes, faults, recording, lifecycle, LiteLLM."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from leadfactory.llm.simulator import Fault, Simulator, offline_environment, server

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


# --- happy shapes -------------------------------------------------------------------------


def test_openai_shape(sim: Simulator, client: httpx.Client) -> None:
    r = call(sim, client, "openai")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["id"].startswith("chatcmpl-")
    assert body["object"] == "chat.completion"
    assert isinstance(body["created"], int)
    assert body["model"] == "gpt-4"
    assert body["system_fingerprint"] == "fp_sim"
    assert body["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": REPLY.format("openai"), "refusal": None},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ]
    # prompt: 2 + 3 words, + 3 per message; completion: words of the reply
    assert body["usage"] == {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}


def test_openai_paths_with_and_without_v1(sim: Simulator, client: httpx.Client) -> None:
    root = sim.base_url("openai").removesuffix("/v1")
    assert sim.base_url("openai").endswith("/v1")
    for path in ("/v1/chat/completions", "/chat/completions", "/v1/chat/completions/"):
        assert client.post(root + path, json=REQUESTS["openai"][1]).status_code == 200


def test_openai_content_parts(sim: Simulator, client: httpx.Client) -> None:
    parts = [{"type": "text", "text": "hello"}, {"type": "image_url", "image_url": {"url": "x"}}]
    r = call(sim, client, "openai", messages=[{"role": "user", "content": parts}])
    assert r.json()["choices"][0]["message"]["content"] == "Simulated openai reply to: hello"


@pytest.mark.parametrize("include_usage", [False, True])
def test_openai_stream(sim: Simulator, client: httpx.Client, include_usage: bool) -> None:
    extra: dict[str, Any] = {"stream": True}
    if include_usage:
        extra["stream_options"] = {"include_usage": True}
    r = call(sim, client, "openai", **extra)
    assert r.headers["content-type"] == "text/event-stream"
    lines = [line for line in r.text.split("\n\n") if line]
    assert all(line.startswith("data: ") for line in lines)
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line[6:]) for line in lines[:-1]]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert len({c["id"] for c in chunks}) == 1
    with_choices = [c for c in chunks if c["choices"]]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in with_choices)
    assert text == REPLY.format("openai")
    assert with_choices[0]["choices"][0]["delta"]["role"] == "assistant"
    assert with_choices[-1]["choices"][0]["finish_reason"] == "stop"
    if include_usage:
        assert chunks[-1]["choices"] == []
        assert chunks[-1]["usage"]["total_tokens"] == 18
    else:
        assert all("usage" not in c for c in chunks)


@pytest.mark.parametrize(
    "system", ["Be brief.", [{"type": "text", "text": "Be brief."}]], ids=["str", "blocks"]
)
def test_anthropic_shape(sim: Simulator, client: httpx.Client, system: Any) -> None:
    content = [{"type": "text", "text": "hello there"}, {"type": "text", "text": "friend"}]
    r = call(
        sim, client, "anthropic", system=system, messages=[{"role": "user", "content": content}]
    )
    assert r.status_code == 200
    body = r.json()
    assert body["id"].startswith("msg_")
    assert {k: v for k, v in body.items() if k != "id"} == {
        "type": "message",
        "role": "assistant",
        "model": "claude-3",
        "content": [{"type": "text", "text": REPLY.format("anthropic")}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 11, "output_tokens": 7},
    }
    assert r.headers["request-id"].startswith("req_")


def test_anthropic_stream(sim: Simulator, client: httpx.Client) -> None:
    r = call(sim, client, "anthropic", stream=True)
    assert r.headers["content-type"] == "text/event-stream"
    events = []
    for block in filter(None, r.text.split("\n\n")):
        event_line, data_line = block.split("\n")
        data = json.loads(data_line.removeprefix("data: "))
        assert event_line == f"event: {data['type']}"
        events.append(data)
    assert [e["type"] for e in events[:2]] == ["message_start", "content_block_start"]
    assert [e["type"] for e in events[-3:]] == [
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    text = "".join(e["delta"]["text"] for e in events if e["type"] == "content_block_delta")
    assert text == REPLY.format("anthropic")
    assert events[-2]["delta"]["stop_reason"] == "end_turn"
    assert events[-2]["usage"]["output_tokens"] == 7


def test_ollama_chat_shape(sim: Simulator, client: httpx.Client) -> None:
    r = call(sim, client, "ollama")
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["model"] == "llama3:8b"
    assert body["created_at"].endswith("Z")
    assert body["message"] == {"role": "assistant", "content": REPLY.format("ollama")}
    assert body["done"] is True
    assert body["done_reason"] == "stop"
    assert (body["prompt_eval_count"], body["eval_count"]) == (11, 7)
    for key in ("total_duration", "load_duration", "prompt_eval_duration", "eval_duration"):
        assert isinstance(body[key], int)


def test_ollama_streams_by_default(sim: Simulator, client: httpx.Client) -> None:
    body = {"model": "llama3:8b", "messages": MESSAGES}  # no "stream": Ollama streams
    r = client.post(sim.base_url("ollama") + "/api/chat", json=body)
    assert r.headers["content-type"] == "application/x-ndjson"
    chunks = [json.loads(line) for line in r.text.splitlines()]
    assert [c["done"] for c in chunks] == [False] * (len(chunks) - 1) + [True]
    assert "".join(c["message"]["content"] for c in chunks) == REPLY.format("ollama")
    assert chunks[-1]["eval_count"] == 7
    assert chunks[-1]["done_reason"] == "stop"


def test_ollama_generate(sim: Simulator, client: httpx.Client) -> None:
    url = sim.base_url("ollama") + "/api/generate"
    body = {"model": "llama3:8b", "prompt": "hello there", "system": "Be brief.", "stream": False}
    r = client.post(url, json=body).json()
    assert r["response"] == "Simulated ollama reply to: hello there"
    assert r["done"] is True
    assert r["prompt_eval_count"] == 2 + 3 + 2 + 3
    streamed = client.post(url, json={**body, "stream": True}).text.splitlines()
    assert "".join(json.loads(line)["response"] for line in streamed) == r["response"]


def test_ollama_probes(sim: Simulator, client: httpx.Client) -> None:
    base = sim.base_url("ollama")
    assert client.get(base + "/").text == "Ollama is running"
    assert client.head(base + "/").status_code == 200
    call(sim, client, "ollama", model="mistral:7b")
    names = [m["name"] for m in client.get(base + "/api/tags").json()["models"]]
    assert names == ["llama3:8b", "mistral:7b"]
    assert "version" in client.get(base + "/api/version").json()
    show = client.post(base + "/api/show", json={"name": "llama3:8b"}).json()
    assert show["model_info"]["llama.context_length"] == 8192


@pytest.mark.parametrize(
    ("provider", "extra", "reason"),
    [
        ("openai", {"max_tokens": 3}, "length"),
        ("openai", {"max_completion_tokens": 2}, "length"),
        ("anthropic", {"max_tokens": 3}, "max_tokens"),
        ("ollama", {"options": {"num_predict": 3}}, "length"),
        ("openai", {"max_tokens": 50}, "stop"),
    ],
)
def test_max_tokens(
    sim: Simulator, client: httpx.Client, provider: str, extra: dict[str, Any], reason: str
) -> None:
    body = call(sim, client, provider, **extra).json()
    if provider == "openai":
        text, got, used = (
            body["choices"][0]["message"]["content"],
            body["choices"][0]["finish_reason"],
            body["usage"]["completion_tokens"],
        )
    elif provider == "anthropic":
        text, got, used = (
            body["content"][0]["text"],
            body["stop_reason"],
            body["usage"]["output_tokens"],
        )
    else:
        text, got, used = body["message"]["content"], body["done_reason"], body["eval_count"]
    assert got == reason
    limit = (extra.get("options") or {}).get("num_predict") or extra.get(
        "max_completion_tokens", extra.get("max_tokens")
    )
    expected = " ".join(REPLY.format(provider).split()[:limit])
    assert text == expected
    assert used == len(expected.split())


def test_set_reply(sim: Simulator, client: httpx.Client) -> None:
    sim.set_reply("openai", "fixed text")
    assert call(sim, client, "openai").json()["choices"][0]["message"]["content"] == "fixed text"
    sim.set_reply("openai", None)
    assert call(sim, client, "openai").json()["choices"][0]["message"]["content"].startswith("Sim")


@pytest.mark.parametrize("provider", PROTOCOLS)
def test_unknown_path_is_vendor_404(sim: Simulator, client: httpx.Client, provider: str) -> None:
    r = client.post(sim.base_url(provider) + "/nope", json={})
    assert r.status_code == 404
    body = r.json()
    if provider == "openai":
        assert body["error"]["type"] == "invalid_request_error"
    elif provider == "anthropic":
        assert body["type"] == "error" and body["error"]["type"] == "not_found_error"
    else:
        assert body == {"error": "404 page not found"}


def test_bad_body_is_vendor_400(sim: Simulator, client: httpx.Client) -> None:
    r = client.post(sim.base_url("openai") + "/chat/completions", content=b"not json")
    assert r.status_code == 400
    assert r.json()["error"]["type"] == "invalid_request_error"


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


@pytest.mark.parametrize("provider", PROTOCOLS)
def test_reset(sim: Simulator, client: httpx.Client, provider: str) -> None:
    sim.set_fault(provider, Fault.RESET)
    with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
        call(sim, client, provider)
    assert sim.request_count(provider) == 1


@pytest.mark.parametrize("provider", PROTOCOLS)
def test_refuse_and_restore_same_port(sim: Simulator, client: httpx.Client, provider: str) -> None:
    url = sim.base_url(provider)
    assert call(sim, client, provider).status_code == 200  # leaves a pooled keep-alive connection
    sim.set_fault(provider, Fault.REFUSE, times=1)  # times is ignored for REFUSE
    for _ in range(2):
        with pytest.raises(httpx.ConnectError):
            call(sim, client, provider)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port_of(url)), timeout=1).close()
    assert sim.request_count(provider) == 1
    other = next(p for p in PROTOCOLS if p != provider)
    assert call(sim, client, other).status_code == 200  # the other providers are fine
    sim.clear_faults()
    assert sim.base_url(provider) == url
    assert call(sim, client, provider).status_code == 200
    sim.set_fault(provider, "refuse")
    sim.set_fault(provider, Fault.OK)
    assert call(sim, client, provider).status_code == 200


def test_hang_times_out_and_stop_is_prompt(client: httpx.Client) -> None:
    sim = Simulator().start()
    try:
        sim.set_fault("openai", Fault.HANG)
        started = time.monotonic()
        with new_client(0.3) as quick, pytest.raises(httpx.ReadTimeout):
            call(sim, quick, "openai")
        assert time.monotonic() - started < 3  # the client's 0.3 s timeout, not a hang
        assert call(sim, client, "anthropic").status_code == 200  # others are not blocked
        raw = socket.create_connection(("127.0.0.1", port_of(sim.base_url("openai"))))
        body = json.dumps(REQUESTS["openai"][1]).encode()
        raw.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\n\r\n%s"
            % (len(body), body)
        )
        deadline = time.monotonic() + 3
        while sim.request_count("openai") < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert sim.request_count("openai") == 2
    finally:
        started = time.monotonic()
        sim.stop()
        assert time.monotonic() - started < 3  # the hung request (5 s) is not waited for
    raw.settimeout(2)
    with contextlib.suppress(ConnectionResetError):
        assert raw.recv(100) == b""  # closed by stop(), never answered
    raw.close()


def test_hang_released_by_clear(sim: Simulator) -> None:
    sim.set_fault("openai", "hang")
    with ThreadPoolExecutor(1) as pool, new_client(5) as hanging:
        future = pool.submit(call, sim, hanging, "openai")
        deadline = time.monotonic() + 3
        while sim.request_count("openai") < 1 and time.monotonic() < deadline:
            time.sleep(0.01)  # until the request hangs there
        started = time.monotonic()
        sim.clear_faults()
        with pytest.raises(httpx.TransportError):
            future.result(timeout=3)
        assert time.monotonic() - started < 3  # released, not timed out (5 s)
    with new_client(5) as c:
        assert call(sim, c, "openai").status_code == 200


@pytest.mark.parametrize("provider", ["openai", "anthropic", "ollama"])
def test_trickle_sends_the_whole_answer_a_byte_at_a_time(sim: Simulator, provider: str) -> None:
    sim.set_fault(provider, Fault.TRICKLE, delay=0.001)
    path, body = REQUESTS[sim_protocol(sim, provider)]
    with new_client(30) as c, c.stream("POST", sim.base_url(provider) + path, json=body) as r:
        assert r.status_code == 200
        pieces = list(r.iter_raw())
    assert len(pieces) > 10 and json.loads(b"".join(pieces))  # many reads, one valid body


def test_trickle_is_cut_short_by_clear(sim: Simulator) -> None:
    sim.set_fault("openai", Fault.TRICKLE, delay=1)
    with ThreadPoolExecutor(1) as pool, new_client(5) as slow:
        future = pool.submit(call, sim, slow, "openai")
        deadline = time.monotonic() + 3
        while sim.request_count("openai") < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        sim.clear_faults()
        with pytest.raises(httpx.TransportError):
            future.result(timeout=4)  # the server closed it, not the client's 5 s read timeout


def test_delay_does_not_block_others(sim: Simulator) -> None:
    sim.set_fault("openai", Fault.DELAY, delay=0.5)
    started = time.monotonic()
    with ThreadPoolExecutor(5) as pool:
        clients = [new_client(5) for _ in range(5)]
        results = list(pool.map(lambda c: call(sim, c, "openai").status_code, clients))
        for c in clients:
            c.close()
    elapsed = time.monotonic() - started
    assert results == [200] * 5
    assert 0.5 <= elapsed < 2.0  # one after another would take 2.5 s


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


# --- recording, providers, HTTP details ---------------------------------------------------


def test_request_recording(sim: Simulator, client: httpx.Client) -> None:
    call(sim, client, "openai")
    sim.set_fault("openai", "503", times=1)
    call(sim, client, "openai")
    client.get(sim.base_url("openai") + "/models?x=1", headers={"X-Custom": "Yes"})
    reqs = sim.requests("openai")
    assert sim.request_count("openai") == 3 == len(reqs)
    assert reqs[0]["method"] == "POST"
    assert reqs[0]["path"] == "/v1/chat/completions"
    assert reqs[0]["json"] == REQUESTS["openai"][1]
    assert reqs[0]["headers"]["content-type"] == "application/json"
    assert reqs[2]["json"] is None
    assert (reqs[2]["path"], reqs[2]["query"], reqs[2]["headers"]["x-custom"]) == (
        "/v1/models",
        "x=1",
        "Yes",
    )
    assert sim.request_count("anthropic") == 0
    sim.reset_requests()
    assert sim.requests("openai") == []


def test_log_is_bounded_but_count_is_not(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server, "MAX_RECORDED", 3)
    with Simulator() as sim, new_client() as c:
        for n in range(5):
            call(sim, c, "openai", model=f"m{n}")
        assert sim.request_count("openai") == 5
        assert [r["json"]["model"] for r in sim.requests("openai")] == ["m2", "m3", "m4"]
        sim.reset_requests("openai")
        assert sim.request_count("openai") == 0


def test_providers_and_env() -> None:
    with Simulator(providers={"primary": "openai", "backup": "anthropic"}) as sim:
        custom = sim.add_provider("custom", protocol="ollama")
        assert custom == sim.base_url("custom") and not custom.endswith("/v1")
        ports = {port_of(sim.base_url(n)) for n in ("primary", "backup", "custom")}
        assert len(ports) == 3
        env = sim.env()
        assert env["OPENAI_BASE_URL"] == sim.base_url("primary")
        assert env["ANTHROPIC_BASE_URL"] == sim.base_url("backup")
        assert env["OLLAMA_HOST"] == env["OLLAMA_API_BASE"] == custom
        with new_client() as c:
            r = c.post(custom + "/api/chat", json=REQUESTS["ollama"][1])
            assert r.json()["message"]["content"] == REPLY.format("custom")
    with pytest.raises(ValueError):
        Simulator(providers={"x": "grpc"})
    with Simulator() as sim:
        assert set(sim.env()) >= {"OPENAI_BASE_URL", "ANTHROPIC_BASE_URL", "OLLAMA_HOST"}
        assert sim.env()["OPENAI_BASE_URL"].endswith("/v1")


# --- offline_environment --------------------------------------------------------------------

OFFLINE_VARIABLES = (
    "OPENAI_BASE_URL",
    "ANTHROPIC_BASE_URL",
    "OLLAMA_HOST",
    "OLLAMA_API_BASE",
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    "LLM_LEDGER_PATH",
    "LLM_CACHE_PATH",
    "OLLAMA_RETRY_DELAY",
)


def snapshot() -> dict[str, str | None]:
    return {name: os.environ.get(name) for name in OFFLINE_VARIABLES}


def test_offline_environment_points_everything_at_a_simulator_then_restores(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("LLM_LEDGER_PATH")
    monkeypatch.delenv("LLM_CACHE_PATH")
    monkeypatch.setenv("OLLAMA_RETRY_DELAY", "0.5")
    before = snapshot()
    with offline_environment(env={"OLLAMA_RETRY_DELAY": "0", "OPENAI_RETRY_DELAY": "0"}) as sim:
        assert isinstance(sim, Simulator)
        for name, value in sim.env().items():
            assert os.environ[name] == value
        assert os.environ["OPENAI_API_KEY"] and os.environ["ANTHROPIC_API_KEY"]
        scratch = os.path.dirname(os.environ["LLM_LEDGER_PATH"])
        assert os.path.isdir(scratch)
        assert os.path.dirname(os.environ["LLM_CACHE_PATH"]) == scratch
        assert os.environ["OLLAMA_RETRY_DELAY"] == "0.5"  # already set: left alone
        assert os.environ["OPENAI_RETRY_DELAY"] == "0"
        url = sim.base_url("openai")
        with new_client() as c:
            assert c.post(url + "/chat/completions", json=REQUESTS["openai"][1]).status_code == 200
    assert snapshot() == before and "OPENAI_RETRY_DELAY" not in os.environ
    assert not os.path.exists(scratch)
    with pytest.raises(httpx.ConnectError), new_client() as c:
        c.post(url + "/chat/completions", json=REQUESTS["openai"][1])


def test_offline_environment_keeps_a_ledger_path_already_set() -> None:
    ledger = os.environ["LLM_LEDGER_PATH"]  # conftest points it at tmp_path
    with offline_environment():
        assert os.environ["LLM_LEDGER_PATH"] == ledger


def test_offline_environment_restores_after_an_error() -> None:
    before = snapshot()
    with pytest.raises(RuntimeError), offline_environment():
        raise RuntimeError("boom")
    assert snapshot() == before


@pytest.mark.parametrize("configured_by", ["key", "dotenv", "ollama", None])
def test_offline_environment_if_unconfigured(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any, configured_by: str | None
) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    if configured_by == "key":
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-real")
    elif configured_by == "dotenv":  # the client reads ./.env, so it counts too
        (tmp_path / ".env").write_text("# keys\nexport OPENAI_API_KEY='sk-real'\n")
    elif configured_by == "ollama":
        monkeypatch.setenv("OLLAMA_HOST", f"http://127.0.0.1:{listener.getsockname()[1]}")
    else:
        (tmp_path / ".env").write_text("OPENAI_API_KEY=\nLLM_DAILY_COST_LIMIT=5\n")
    before = snapshot()
    with listener, offline_environment(if_unconfigured=True) as sim:
        if configured_by is None:
            assert isinstance(sim, Simulator)
            assert os.environ["OLLAMA_HOST"] == sim.base_url("ollama")
        else:
            assert sim is None and snapshot() == before
    assert snapshot() == before


def test_offline_environment_serves_the_client() -> None:
    from leadfactory.llm import LLMClient

    with offline_environment() as sim, LLMClient() as client:
        response = client.chat_completion([{"role": "user", "content": "hi"}], max_tokens=5)
    assert response["provider"] == "ollama"
    assert response["choices"][0]["message"]["content"] == "Simulated ollama reply to: hi"
    assert sim.request_count("ollama") >= 1


def raw_exchange(port: int, data: bytes, responses: int) -> list[bytes]:
    """Send raw bytes on one connection and read ``responses`` complete answers."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(data)
        buf, out = b"", []
        while len(out) < responses:
            while b"\r\n\r\n" not in buf:
                buf += s.recv(65536)
            head, _, buf = buf.partition(b"\r\n\r\n")
            if head.startswith(b"HTTP/1.1 100"):
                continue
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            while len(buf) < length:
                buf += s.recv(65536)
            out.append(head + b"\r\n\r\n" + buf[:length])
            buf = buf[length:]
        return out


def test_keep_alive_pipelining_chunked_and_expect(sim: Simulator) -> None:
    body = json.dumps(REQUESTS["openai"][1]).encode()
    plain = b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\n\r\n%s" % (
        len(body),
        body,
    )
    chunked = (
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n"
        b"expect: 100-continue\r\n\r\n%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n"
        % (10, body[:10], len(body) - 10, body[10:])
    )
    answers = raw_exchange(port_of(sim.base_url("openai")), plain + chunked + plain, 3)
    assert all(a.startswith(b"HTTP/1.1 200 OK\r\n") for a in answers)
    assert all(b"connection: keep-alive" in a for a in answers)
    assert [r["json"] for r in sim.requests("openai")] == [REQUESTS["openai"][1]] * 3


def test_connection_close(sim: Simulator) -> None:
    request = b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
    (answer,) = raw_exchange(port_of(sim.base_url("ollama")), request, 1)
    assert b"connection: close" in answer and answer.endswith(b"Ollama is running")


def test_many_concurrent_connections(sim: Simulator) -> None:
    port = port_of(sim.base_url("openai"))
    body = json.dumps(REQUESTS["openai"][1]).encode()
    request = b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\n\r\n%s" % (
        len(body),
        body,
    )

    async def connection() -> int:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        ok = 0
        for _ in range(10):
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            ok += head.startswith(b"HTTP/1.1 200") and len(await reader.readexactly(length)) > 0
        writer.close()
        return ok

    async def main() -> int:
        return sum(await asyncio.gather(*(connection() for _ in range(100))))

    assert asyncio.run(main()) == 1000
    assert sim.request_count("openai") == 1000


def test_start_stop_many_times_does_not_leak() -> None:
    def open_fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    def simulator_threads() -> int:  # other tests' session simulator may be running
        return sum(t.name == "llm-simulator" for t in threading.enumerate())

    threads, fds, sims = threading.active_count(), open_fds(), simulator_threads()
    for _ in range(50):
        with Simulator() as sim, new_client(2) as c:
            assert call(sim, c, "openai").status_code == 200
    # <=: another test's idle writer or checkpoint thread may end meanwhile
    assert threading.active_count() <= threads
    assert simulator_threads() == sims
    assert open_fds() <= fds + 2


def test_restart_keeps_ports(client: httpx.Client) -> None:
    sim = Simulator()
    url = sim.base_url("openai")
    sim.start()
    sim.stop()
    sim.start()
    try:
        assert sim.base_url("openai") == url
        assert call(sim, client, "openai").status_code == 200
    finally:
        sim.stop()


def test_cli_prints_env_and_serves() -> None:
    command = [sys.executable, "-m", "leadfactory.llm.simulator"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None
            env = {}
            for line in iter(proc.stdout.readline, ""):
                if not line.startswith("export "):
                    break
                key, _, value = line.strip().removeprefix("export ").partition("=")
                env[key] = value
            assert set(env) >= {"OPENAI_BASE_URL", "ANTHROPIC_BASE_URL", "OLLAMA_HOST"}
            url = env["OPENAI_BASE_URL"] + "/chat/completions"
            assert httpx.post(url, json=REQUESTS["openai"][1]).status_code == 200
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()


# --- LiteLLM for real ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def litellm() -> Any:
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    import litellm

    litellm.suppress_debug_info = True
    return litellm


LITELLM_CASES = {
    "openai": {"model": "openai/gpt-4", "api_key": "sk-test"},
    "anthropic": {"model": "anthropic/claude-3-sonnet-20240229", "api_key": "sk-ant-test"},
    "ollama": {"model": "ollama_chat/llama3:8b"},
}
LITELLM_PATHS = {
    "openai": "/v1/chat/completions",
    "anthropic": "/v1/messages",
    "ollama": "/api/chat",
}


@pytest.mark.parametrize("provider", PROTOCOLS)
def test_litellm_completion(sim: Simulator, litellm: Any, provider: str) -> None:
    response = litellm.completion(
        api_base=sim.base_url(provider),
        messages=MESSAGES,
        max_retries=0,
        timeout=10,
        **LITELLM_CASES[provider],
    )
    assert response.choices[0].message.content == REPLY.format(provider)
    assert response.choices[0].finish_reason == "stop"
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (11, 7)
    assert response.usage.total_tokens == 18
    (recorded,) = [r for r in sim.requests(provider) if r["method"] == "POST"]
    assert recorded["path"] == LITELLM_PATHS[provider]
