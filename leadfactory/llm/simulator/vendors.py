"""What the simulated vendors say: routes and answer bodies per wire protocol.

Pure functions from a parsed request to a :data:`Response`; nothing here touches a socket.
What a faulty provider says instead is in :mod:`.faults`; the HTTP side (listening,
refusing, hanging, truncating) is in :mod:`.server`.
"""

from __future__ import annotations

import datetime
import json
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from .faults import (
    ANSWER_FAULTS,
    ERRORS,
    IRE,
    MALFORMED_BODIES,
    PROTOCOLS,
    Fault,
    Response,
    error_response,
    json_response,
    misbehave,
    vendor_error,
)
from .refusals import REFUSALS, policy_stop, refusal_response
from .streaming import stream_deltas
from .tools import anthropic_answer, ollama_answer, openai_answer
from .usage import UsageScript, with_usage

__all__ = [
    "PROTOCOLS",
    "REQUEST_ID_HEADER",
    "Fault",
    "Request",
    "check_protocol",
    "completion",
    "respond",
]

OLLAMA_MODEL = "llama3:8b"  # always listed by GET /api/tags
REQUEST_ID_HEADER = {"openai": "x-request-id", "anthropic": "request-id"}


@dataclass
class Request:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    json: Any
    keep_alive: bool


@dataclass
class Completion:
    model: str
    text: str
    prompt_tokens: int
    completion_tokens: int
    truncated: bool


class Backend(Protocol):
    """What a route handler asks of the provider it answers for."""

    usage: UsageScript  # what its next answers report (see .usage)

    def complete(self, model: Any, messages: list[tuple[str, str]], max_tokens: Any) -> Completion:
        """The reply to ``messages``."""

    def models_asked(self) -> set[str]:
        """Every model named in a request so far."""


Handler = Callable[[Backend, Request], Response]


def completion(
    name: str, reply: str | None, model: Any, messages: list[tuple[str, str]], max_tokens: Any
) -> Completion:
    """The deterministic reply (``reply``, or an echo), cut to ``max_tokens`` words."""
    if reply is None:
        last_user = next((text for role, text in reversed(messages) if role == "user"), "")
        reply = f"Simulated {name} reply to: {last_user}"
    words = reply.split()
    limit = max_tokens if type(max_tokens) is int and max_tokens >= 0 else None
    truncated = limit is not None and len(words) > limit
    if truncated:
        reply = " ".join(words[:limit])
    prompt = sum(len(text.split()) + 3 for _, text in messages)
    return Completion(str(model or ""), reply, prompt, len(reply.split()), truncated)


def respond(
    backend: Backend,
    protocol: str,
    req: Request,
    fault: Fault,
    retry_after: float | str,
) -> Response:
    """The answer to send: an error fault's, a 404, a malformed body, or the route's."""
    handler = ROUTES[protocol].get((req.method, req.path))
    # Ollama's OpenAI-compatible routes (/v1/...) speak OpenAI's format, errors included.
    v1 = protocol == "ollama" and req.path.startswith("/v1/")
    shape = "openai" if v1 else protocol
    if fault in REFUSALS:
        return refusal_response(protocol, fault, req.json, shape)
    if fault in ERRORS:
        model = str(req.json.get("model", "")) if isinstance(req.json, dict) else ""
        response = error_response(protocol, fault, model, shape, req.headers)
        if fault is Fault.RATE_LIMIT:
            retry = retry_after
            if not isinstance(retry, str):
                retry = str(int(retry)) if float(retry).is_integer() else str(retry)
            response[3]["retry-after"] = retry
            if protocol == "anthropic":
                response[3]["anthropic-ratelimit-requests-remaining"] = "0"
        return response
    if handler is None:
        if protocol == "ollama":
            return json_response(404, {"error": "404 page not found"})
        kind = "not_found_error" if protocol == "anthropic" else IRE
        message = f"Invalid URL ({req.method} {req.path})"
        return vendor_error(protocol, 404, message, kind, None)
    if fault is Fault.MALFORMED:
        return 200, "application/json", MALFORMED_BODIES[shape], {}
    response = handler(backend, req)
    whole = handler in _GENERATORS and response[:2] == (200, "application/json")
    if whole and (usage := backend.usage.take()) is not None:  # scripted usage (see .usage)
        response = json_response(200, with_usage(protocol, shape, json.loads(response[2]), usage))
    if fault in ANSWER_FAULTS and response[:2] == (200, "application/json"):
        return json_response(200, misbehave(shape, fault, json.loads(response[2])))
    if fault is Fault.POLICY_STOP and response[:2] == (200, "application/json"):
        return json_response(200, policy_stop(shape, json.loads(response[2])))
    return response


def is_generation(protocol: str, req: Request) -> bool:
    """Whether faults apply to ``req`` (probes such as ``GET /api/tags`` are spared)."""
    return ROUTES[protocol].get((req.method, req.path)) in _GENERATORS


# -- message helpers ----------------------------------------------------------------------


def _text(content: Any) -> str:
    """Text of a message content: a string or a list of ``{"type": "text", "text": ...}`` blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [b.get("text") for b in content if isinstance(b, dict)]
        return " ".join(t for t in texts if isinstance(t, str))
    return ""


def _messages(items: Any) -> list[tuple[str, str]]:
    """(role, text) pairs of a list of chat messages."""
    items = items if isinstance(items, list) else []
    return [(str(m.get("role", "")), _text(m.get("content"))) for m in items if isinstance(m, dict)]


def _pieces(text: str) -> list[str]:
    """Split a reply into word-sized stream pieces that join back to exactly ``text``."""
    return [p for p in re.split(r"(?<=\s)(?=\S)", text) if p]


def _now_iso() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# -- routes -------------------------------------------------------------------------------


def _openai_chat(p: Backend, req: Request) -> Response:
    b = req.json
    if not isinstance(b, dict) or not isinstance(b.get("messages"), list):
        return error_response("openai", Fault.BAD_REQUEST, "")
    c = p.complete(
        b.get("model"),
        _messages(b["messages"]),
        b.get("max_completion_tokens", b.get("max_tokens")),
    )
    finish = "length" if c.truncated else "stop"
    usage = {
        "prompt_tokens": c.prompt_tokens,
        "completion_tokens": c.completion_tokens,
        "total_tokens": c.prompt_tokens + c.completion_tokens,
    }
    base = {
        "id": "chatcmpl-" + secrets.token_hex(12),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": c.model,
        "system_fingerprint": "fp_sim",
    }
    if not b.get("stream"):
        message = {"role": "assistant", "content": c.text, "refusal": None}
        message, finish = openai_answer(b, message, finish)  # tool calls, JSON schemas
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
        return json_response(200, {**base, "choices": [choice], "usage": usage})

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return {**base, "object": "chat.completion.chunk", "choices": [choice]}

    message, finish = openai_answer(b, {"role": "assistant", "content": c.text}, finish)
    chunks = [chunk({"role": "assistant", "content": ""})]
    chunks += [chunk(delta) for delta in stream_deltas(message, _pieces)] + [chunk({}, finish)]
    if (b.get("stream_options") or {}).get("include_usage"):
        chunks.append({**chunks[-1], "choices": [], "usage": usage})  # OpenAI's usage chunk
    body = "".join(f"data: {json.dumps(x)}\n\n" for x in chunks) + "data: [DONE]\n\n"
    return 200, "text/event-stream", body.encode(), {}


def _anthropic_messages(p: Backend, req: Request) -> Response:
    b = req.json
    if not isinstance(b, dict) or not isinstance(b.get("messages"), list):
        return error_response("anthropic", Fault.BAD_REQUEST, "")
    system = [("system", _text(b["system"]))] if b.get("system") else []
    c = p.complete(b.get("model"), system + _messages(b["messages"]), b.get("max_tokens"))
    stop = "max_tokens" if c.truncated else "end_turn"
    usage = {"input_tokens": c.prompt_tokens, "output_tokens": c.completion_tokens}
    message = {
        "id": "msg_" + secrets.token_hex(12),
        "type": "message",
        "role": "assistant",
        "model": c.model,
        "content": [{"type": "text", "text": c.text}],
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": usage,
    }
    if not b.get("stream"):
        return json_response(200, anthropic_answer(b, message))  # tool_use, JSON schemas
    start = {**message, "content": [], "stop_reason": None, "usage": {**usage, "output_tokens": 1}}
    block = {"type": "text", "text": ""}
    events = [
        {"type": "message_start", "message": start},
        {"type": "content_block_start", "index": 0, "content_block": block},
        *(
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": t}}
            for t in _pieces(c.text)
        ),
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": stop, "stop_sequence": None},
            "usage": {"output_tokens": c.completion_tokens},
        },
        {"type": "message_stop"},
    ]
    body = "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events)
    return 200, "text/event-stream", body.encode(), {}


def _ollama(p: Backend, req: Request, generate: bool) -> Response:
    """``POST /api/chat`` (or ``/api/generate``); Ollama streams unless ``"stream": false``."""
    b = req.json
    if not isinstance(b, dict) or (not generate and not isinstance(b.get("messages"), list)):
        return error_response("ollama", Fault.BAD_REQUEST, "")
    if generate:
        msgs = [("system", _text(b["system"]))] if b.get("system") else []
        msgs.append(("user", _text(b.get("prompt"))))
    else:
        msgs = _messages(b["messages"])
    c = p.complete(b.get("model"), msgs, (b.get("options") or {}).get("num_predict"))

    def part(text: str) -> dict[str, Any]:
        return (
            {"response": text} if generate else {"message": {"role": "assistant", "content": text}}
        )

    stream, now = b.get("stream", True) is not False, _now_iso()
    final = {
        "model": c.model,
        "created_at": now,
        **part("" if stream else c.text),
        "done": True,
        "done_reason": "length" if c.truncated else "stop",
        "total_duration": (c.prompt_tokens + 2 * c.completion_tokens + 1) * 1_000_000,
        "load_duration": 1_000_000,
        "prompt_eval_count": c.prompt_tokens,
        "prompt_eval_duration": c.prompt_tokens * 1_000_000,
        "eval_count": c.completion_tokens,
        "eval_duration": c.completion_tokens * 2_000_000,
    }
    if generate:
        final["context"] = list(range(1, c.prompt_tokens + c.completion_tokens + 1))
    if not stream:
        return json_response(200, final if generate else ollama_answer(b, final))
    chunks = [
        {"model": c.model, "created_at": now, **part(t), "done": False} for t in _pieces(c.text)
    ]
    body = "".join(json.dumps(x) + "\n" for x in [*chunks, final])
    return 200, "application/x-ndjson", body.encode(), {}


_OLLAMA_DETAILS = {
    "format": "gguf",
    "family": "llama",
    "parameter_size": "8.0B",
    "quantization_level": "Q4_0",
}


def _ollama_tags(p: Backend, req: Request) -> Response:
    """``GET /api/tags``: OLLAMA_MODEL and every model asked for so far."""
    names = sorted((p.models_asked() - {"None", ""}) | {OLLAMA_MODEL})
    models = [
        {
            "name": m,
            "model": m,
            "modified_at": _now_iso(),
            "size": 4_661_224_676,
            "digest": "sha256:" + "0" * 64,
            "details": _OLLAMA_DETAILS,
        }
        for m in names
    ]
    return json_response(200, {"models": models})


def _ollama_show(p: Backend, req: Request) -> Response:
    """``POST /api/show``, which LiteLLM may ask for a model's context length."""
    model_info = {"general.architecture": "llama", "llama.context_length": 8192}
    return json_response(
        200, {"template": "{{ .Prompt }}", "details": _OLLAMA_DETAILS, "model_info": model_info}
    )


def _ollama_running(p: Backend, req: Request) -> Response:
    return 200, "text/plain; charset=utf-8", b"Ollama is running", {}


ROUTES: dict[str, dict[tuple[str, str], Handler]] = {
    "openai": {
        ("POST", "/v1/chat/completions"): _openai_chat,
        ("POST", "/chat/completions"): _openai_chat,
    },
    "anthropic": {("POST", "/v1/messages"): _anthropic_messages},
    "ollama": {
        ("GET", "/"): _ollama_running,
        ("HEAD", "/"): _ollama_running,
        ("GET", "/api/version"): lambda p, r: json_response(200, {"version": "0.6.0"}),
        ("GET", "/api/tags"): _ollama_tags,
        ("POST", "/api/show"): _ollama_show,
        ("POST", "/api/chat"): lambda p, r: _ollama(p, r, generate=False),
        ("POST", "/api/generate"): lambda p, r: _ollama(p, r, generate=True),
        ("POST", "/v1/chat/completions"): _openai_chat,  # Ollama's OpenAI-compatible API
    },
}
_GENERATORS = {  # the routes that faults apply to
    ROUTES["openai"][("POST", "/v1/chat/completions")],
    ROUTES["anthropic"][("POST", "/v1/messages")],
    ROUTES["ollama"][("POST", "/api/chat")],
    ROUTES["ollama"][("POST", "/api/generate")],
    ROUTES["ollama"][("POST", "/v1/chat/completions")],
}


def check_protocol(protocol: str) -> None:
    """Raise ValueError unless ``protocol`` is one the simulator speaks."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; expected one of {sorted(PROTOCOLS)}")
