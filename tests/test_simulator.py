"""The simulator's wire shapes: what each protocol answers, checked by hand and by LiteLLM.

OpenAI (with and without /v1, content parts, streams with and without usage), Anthropic
(system prompts, streams), Ollama (chat, streaming by default, generate, probes),
max_tokens, a reply set by the test, unknown paths and bad bodies answered as the vendor
would; and LiteLLM's own completion against each protocol. Faults are in
tests/test_simulator_faults.py and tests/test_simulator_transport.py, the server's HTTP
and lifecycle in tests/test_simulator_server.py, offline_environment in
tests/test_simulator_offline.py.
"""

from __future__ import annotations

import json
import os
from typing import Any

import httpx
import pytest

from leadfactory.llm.simulator import Simulator

from .simulator_requests import MESSAGES, PROTOCOLS, REPLY, REQUESTS, call

# fixtures, imported so that pytest finds them in this module
from .simulator_requests import client as client
from .simulator_requests import sim as sim

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
