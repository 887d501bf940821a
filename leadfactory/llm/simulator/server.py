"""A local stand-in for the OpenAI, Anthropic and Ollama HTTP APIs, with fault injection.

A real HTTP/1.1 server (asyncio streams in a daemon thread with its own event loop) on
127.0.0.1. Each provider name gets its own ephemeral port, so one can fail while another works::

    with Simulator() as sim:
        sim.set_fault("openai", Fault.RATE_LIMIT, retry_after=2)
        litellm.completion(model="openai/gpt-4", api_base=sim.base_url("openai"), ...)

Faults apply to the generation routes (chat/completions, messages, api/chat, api/generate);
probes such as ``GET /api/tags`` are answered normally unless the port is refused.
``python -m leadfactory.llm.simulator`` serves until Ctrl-C. Standard library only.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import http
import json
import re
import secrets
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

__all__ = ["Fault", "Simulator"]

HOST = "127.0.0.1"
DEFAULT_PROVIDERS = {"openai": "openai", "anthropic": "anthropic", "ollama": "ollama"}
OLLAMA_MODEL = "llama3:8b"  # always listed by GET /api/tags
MAX_RECORDED = 10_000  # requests() keeps the latest ones; request_count() counts them all


class Fault(StrEnum):
    """What a provider does with its next requests (see :meth:`Simulator.set_fault`)."""

    OK = "ok"
    REFUSE = "refuse"
    RESET = "reset"
    HANG = "hang"
    DELAY = "delay"
    RATE_LIMIT = "rate_limit"
    INSUFFICIENT_QUOTA = "insufficient_quota"
    BAD_REQUEST = "400"
    UNAUTHORIZED = "401"
    FORBIDDEN = "403"
    NOT_FOUND = "404"
    SERVER_ERROR = "500"
    UNAVAILABLE = "503"
    MALFORMED = "malformed"
    TRUNCATED = "truncated"


_IRE, _QUOTA = "invalid_request_error", "insufficient_quota"
# fault: (status, OpenAI error type, OpenAI error code, Anthropic error type)
_ERRORS: dict[Fault, tuple[int, str, str | None, str]] = {
    Fault.RATE_LIMIT: (429, "requests", "rate_limit_exceeded", "rate_limit_error"),
    Fault.INSUFFICIENT_QUOTA: (429, _QUOTA, _QUOTA, _QUOTA),
    Fault.BAD_REQUEST: (400, _IRE, None, _IRE),
    Fault.UNAUTHORIZED: (401, _IRE, "invalid_api_key", "authentication_error"),
    Fault.FORBIDDEN: (403, _IRE, None, "permission_error"),
    Fault.NOT_FOUND: (404, _IRE, "model_not_found", "not_found_error"),
    Fault.SERVER_ERROR: (500, "server_error", None, "api_error"),
    Fault.UNAVAILABLE: (503, "server_error", None, "overloaded_error"),  # Anthropic really uses 529
}
# fault: (OpenAI, Anthropic, Ollama) error message; {model} is filled in
_MESSAGES: dict[Fault, tuple[str, str, str]] = {
    Fault.RATE_LIMIT: (
        "Rate limit reached for {model} in organization org-sim on requests per min (RPM): "
        "Limit 3, Used 3, Requested 1. Please try again in 20s.",
        "Number of requests has exceeded your per-minute rate limit.",
        "rate limit exceeded",
    ),
    Fault.INSUFFICIENT_QUOTA: (
        "You exceeded your current quota, please check your plan and billing details.",
        "Your credit balance is too low to access the Anthropic API. "
        "Please go to Plans & Billing to upgrade or purchase credits.",
        "insufficient quota",
    ),
    Fault.BAD_REQUEST: (
        "Invalid request (simulated).",
        "Invalid request (simulated).",
        "invalid request",
    ),
    Fault.UNAUTHORIZED: (
        "Incorrect API key provided. "
        "You can find your API key at https://platform.openai.com/account/api-keys.",
        "invalid x-api-key",
        "unauthorized",
    ),
    Fault.FORBIDDEN: (
        "You are not allowed to sample from this model",
        "Your API key does not have permission to use the specified resource.",
        "forbidden",
    ),
    Fault.NOT_FOUND: (
        "The model `{model}` does not exist or you do not have access to it.",
        "model: {model}",
        'model "{model}" not found, try pulling it first',
    ),
    Fault.SERVER_ERROR: (
        "The server had an error while processing your request. Sorry about that!",
        "Internal server error",
        "an unknown error was encountered while running the model",
    ),
    Fault.UNAVAILABLE: (
        "The engine is currently overloaded, please try again later.",
        "Overloaded",
        "server busy, please try again.  maximum pending requests exceeded",
    ),
}
_MALFORMED = {
    "openai": b'{"id": "chatcmpl-broken", "object": "chat.completion", "choices": [',
    "anthropic": b'{"id": "msg_broken", "type": "message", "content": [{"type": "text", ',
    "ollama": b'{"model": "broken", "message": {"role": "assistant", "content": "',
}
_REQUEST_ID_HEADER = {"openai": "x-request-id", "anthropic": "request-id"}

Response = tuple[int, str, bytes, dict[str, str]]  # status, content type, body, extra headers


@dataclass
class _Request:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    json: Any
    keep_alive: bool


@dataclass
class _FaultState:
    fault: Fault = Fault.OK
    times: int | None = None  # None: until cleared
    delay: float = 1.0
    retry_after: float | str = 1


@dataclass
class _Completion:
    model: str
    text: str
    prompt_tokens: int
    completion_tokens: int
    truncated: bool


def _json(status: int, obj: Any) -> Response:
    return status, "application/json", json.dumps(obj).encode(), {}


def _vendor_error(
    protocol: str, status: int, message: str, kind: str, code: str | None
) -> Response:
    """An error body shaped as ``protocol`` shapes it (``kind`` is the error type)."""
    if protocol == "openai":
        return _json(
            status, {"error": {"message": message, "type": kind, "param": None, "code": code}}
        )
    if protocol == "anthropic":
        return _json(status, {"type": "error", "error": {"type": kind, "message": message}})
    return _json(status, {"error": message})


_OLLAMA_OPENAI_TYPES = {400: "invalid_request_error", 404: "not_found_error"}


def _error(protocol: str, fault: Fault, model: str, shape: str | None = None) -> Response:
    """The answer to an error fault, from the tables above.

    ``shape`` is the body's wire format when it differs from the protocol's: Ollama's
    OpenAI-compatible ``/v1`` routes answer with Ollama's messages in OpenAI's shape.
    """
    status, openai_type, code, anthropic_type = _ERRORS[fault]
    index = ("openai", "anthropic", "ollama").index(protocol)
    message = _MESSAGES[fault][index].format(model=model)
    kind = anthropic_type if protocol == "anthropic" else openai_type
    if protocol == "ollama":  # Ollama's /v1 errors: a type by status, never a code
        kind, code = _OLLAMA_OPENAI_TYPES.get(status, "api_error"), None
    return _vendor_error(shape or protocol, status, message, kind, code)


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


def _bind(port: int) -> socket.socket:
    """A TCP socket bound to HOST:port (SO_REUSEADDR), not yet listening: connects are refused."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((HOST, port))
    except OSError:
        sock.close()
        raise
    return sock


class _Provider:
    """One listener speaking one protocol, with its fault state and request log."""

    def __init__(self, name: str, protocol: str) -> None:
        self.name, self.protocol = name, protocol
        self.lock = threading.Lock()  # guards state, reply and log (read from other threads)
        self.state = _FaultState()
        self.reply: str | None = None
        self.log: deque[dict[str, Any]] = deque(maxlen=MAX_RECORDED)
        self.count = 0  # every request that arrived, even those no longer in the log
        self.sock: socket.socket | None = _bind(0)  # reserves the port while not listening
        self.port: int = self.sock.getsockname()[1]
        self.server: asyncio.Server | None = None
        self.conns: dict[asyncio.Task[None], asyncio.StreamWriter] = {}
        self.release: asyncio.Event | None = None  # set to wake hung requests

    async def sync(self) -> None:
        """On the loop: release hung requests; listen, or refuse if the fault is REFUSE."""
        if self.release is not None:
            self.release.set()
        self.release = asyncio.Event()
        refuse = self.state.fault is Fault.REFUSE
        if refuse and self.server is not None:
            self.server.close()
            self.server = None
            self.abort_connections()
        if self.sock is None and self.server is None:
            self.sock = _bind(self.port)  # the same port, held but refusing
        if not refuse and self.server is None:
            assert self.sock is not None
            self.server = await asyncio.start_server(self.serve, sock=self.sock, backlog=1024)
            self.sock = None  # owned, and closed, by the server now

    def abort_connections(self) -> None:
        for task, writer in list(self.conns.items()):
            writer.transport.abort()
            task.cancel()

    async def close(self) -> None:
        """On the loop: stop listening, drop every connection, free the port."""
        if self.server is not None:
            self.server.close()
            self.server = None
        tasks = list(self.conns)
        self.abort_connections()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def take_fault(self, req: _Request, generation: bool) -> _FaultState:
        """Record the request (unless refused) and use up one turn of the current fault."""
        with self.lock:
            state = self.state
            if state.fault is Fault.REFUSE:
                return state
            record = {"method": req.method, "path": req.path, "query": req.query}
            self.log.append({**record, "headers": req.headers, "json": req.json})
            self.count += 1
            if not generation:
                return _FaultState()
            if state.times is not None:
                state.times -= 1
                if state.times <= 0:
                    self.state = _FaultState()
            return state

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve one keep-alive connection."""
        task = asyncio.current_task()
        assert task is not None
        self.conns[task] = writer
        try:
            while (req := await _read_request(reader, writer)) and await self.answer(req, writer):
                pass
        except (OSError, EOFError, ValueError, asyncio.LimitOverrunError, asyncio.CancelledError):
            pass  # only close() cancels; swallowed so Python 3.11's stream callback stays quiet
        finally:
            self.conns.pop(task, None)
            writer.close()

    async def answer(self, req: _Request, writer: asyncio.StreamWriter) -> bool:
        """Answer one request, applying the fault; return whether to keep the connection."""
        handler = _ROUTES[self.protocol].get((req.method, req.path))
        state = self.take_fault(req, handler in _GENERATORS)
        fault, release = state.fault, self.release
        if fault in (Fault.REFUSE, Fault.RESET):
            sock = writer.get_extra_info("socket")
            if sock is not None:  # SO_LINGER 0: closing sends RST, the peer sees ECONNRESET
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
            return False
        if fault is Fault.HANG:
            assert release is not None
            await release.wait()
            return False
        if fault is Fault.DELAY:
            await asyncio.sleep(state.delay)
        status, ctype, body, extra = self.respond(req, handler, state)
        if header := _REQUEST_ID_HEADER.get(self.protocol):
            extra[header] = "req_sim" + secrets.token_hex(8)
        keep = req.keep_alive and fault is not Fault.TRUNCATED
        lines = [
            f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}",
            f"content-type: {ctype}",
            f"content-length: {len(body)}",  # TRUNCATED sends only half of it
            "connection: " + ("keep-alive" if keep else "close"),
            *(f"{k}: {v}" for k, v in extra.items()),
        ]
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if fault is Fault.TRUNCATED:
            body = body[: len(body) // 2]
        writer.write(head if req.method == "HEAD" else head + body)
        await writer.drain()
        return keep

    def respond(self, req: _Request, handler: Handler | None, state: _FaultState) -> Response:
        """The answer to send: an error fault's, a 404, a malformed body, or the route's."""
        # Ollama's OpenAI-compatible routes (/v1/...) speak OpenAI's format, errors included.
        v1 = self.protocol == "ollama" and req.path.startswith("/v1/")
        shape = "openai" if v1 else self.protocol
        if state.fault in _ERRORS:
            model = str(req.json.get("model", "")) if isinstance(req.json, dict) else ""
            response = _error(self.protocol, state.fault, model, shape)
            if state.fault is Fault.RATE_LIMIT:
                retry = state.retry_after
                if not isinstance(retry, str):
                    retry = str(int(retry)) if float(retry).is_integer() else str(retry)
                response[3]["retry-after"] = retry
                if self.protocol == "anthropic":
                    response[3]["anthropic-ratelimit-requests-remaining"] = "0"
            return response
        if handler is None:
            if self.protocol == "ollama":
                return _json(404, {"error": "404 page not found"})
            kind = "not_found_error" if self.protocol == "anthropic" else _IRE
            message = f"Invalid URL ({req.method} {req.path})"
            return _vendor_error(self.protocol, 404, message, kind, None)
        if state.fault is Fault.MALFORMED:
            return 200, "application/json", _MALFORMED[shape], {}
        return handler(self, req)

    def complete(self, model: Any, messages: list[tuple[str, str]], max_tokens: Any) -> _Completion:
        """The deterministic reply, cut to ``max_tokens`` words, with token counts."""
        with self.lock:
            reply = self.reply
        if reply is None:
            last_user = next((text for role, text in reversed(messages) if role == "user"), "")
            reply = f"Simulated {self.name} reply to: {last_user}"
        words = reply.split()
        limit = max_tokens if type(max_tokens) is int and max_tokens >= 0 else None
        truncated = limit is not None and len(words) > limit
        if truncated:
            reply = " ".join(words[:limit])
        prompt = sum(len(text.split()) + 3 for _, text in messages)
        return _Completion(str(model or ""), reply, prompt, len(reply.split()), truncated)


async def _read_request(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> _Request | None:
    """Read one request; ``None`` when the client closed the connection between requests."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial.strip():
            raise
        return None
    request_line, *header_lines = head.decode("latin-1").strip().split("\r\n")
    method, target, version = request_line.split(" ", 2)
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("expect", "").lower() == "100-continue":
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    if "chunked" in headers.get("transfer-encoding", "").lower():
        chunks = []
        while size := int((await reader.readline()).split(b";")[0], 16):
            chunks.append(await reader.readexactly(size))
            await reader.readexactly(2)
        while (await reader.readline()).strip():  # trailers
            pass
        body = b"".join(chunks)
    else:
        body = await reader.readexactly(int(headers.get("content-length") or 0))
    try:
        parsed = json.loads(body) if body else None
    except ValueError:
        parsed = None
    path, _, query = target.partition("?")
    path = re.sub("/+", "/", path).rstrip("/") or "/"
    connection = headers.get("connection", "").lower()
    keep = connection != "close" and (version != "HTTP/1.0" or connection == "keep-alive")
    return _Request(method, path, query, headers, parsed, keep)


def _openai_chat(p: _Provider, req: _Request) -> Response:
    b = req.json
    if not isinstance(b, dict) or not isinstance(b.get("messages"), list):
        return _error("openai", Fault.BAD_REQUEST, "")
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
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
        return _json(200, {**base, "choices": [choice], "usage": usage})

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return {**base, "object": "chat.completion.chunk", "choices": [choice]}

    chunks = [chunk({"role": "assistant", "content": ""})]
    chunks += [chunk({"content": piece}) for piece in _pieces(c.text)] + [chunk({}, finish)]
    if (b.get("stream_options") or {}).get("include_usage"):
        chunks.append({**chunks[-1], "choices": [], "usage": usage})  # OpenAI's usage chunk
    body = "".join(f"data: {json.dumps(x)}\n\n" for x in chunks) + "data: [DONE]\n\n"
    return 200, "text/event-stream", body.encode(), {}


def _anthropic_messages(p: _Provider, req: _Request) -> Response:
    b = req.json
    if not isinstance(b, dict) or not isinstance(b.get("messages"), list):
        return _error("anthropic", Fault.BAD_REQUEST, "")
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
        return _json(200, message)
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


def _ollama(p: _Provider, req: _Request, generate: bool) -> Response:
    """``POST /api/chat`` (or ``/api/generate``); Ollama streams unless ``"stream": false``."""
    b = req.json
    if not isinstance(b, dict) or (not generate and not isinstance(b.get("messages"), list)):
        return _error("ollama", Fault.BAD_REQUEST, "")
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
        return _json(200, final)
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


def _ollama_tags(p: _Provider, req: _Request) -> Response:
    """``GET /api/tags``: OLLAMA_MODEL and every model asked for so far."""
    with p.lock:
        asked = {str(r["json"].get("model")) for r in p.log if isinstance(r["json"], dict)}
    names = sorted((asked - {"None", ""}) | {OLLAMA_MODEL})
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
    return _json(200, {"models": models})


def _ollama_show(p: _Provider, req: _Request) -> Response:
    """``POST /api/show``, which LiteLLM may ask for a model's context length."""
    model_info = {"general.architecture": "llama", "llama.context_length": 8192}
    return _json(
        200, {"template": "{{ .Prompt }}", "details": _OLLAMA_DETAILS, "model_info": model_info}
    )


Handler = Callable[[_Provider, _Request], Response]
_ROUTES: dict[str, dict[tuple[str, str], Handler]] = {
    "openai": {
        ("POST", "/v1/chat/completions"): _openai_chat,
        ("POST", "/chat/completions"): _openai_chat,
    },
    "anthropic": {("POST", "/v1/messages"): _anthropic_messages},
    "ollama": {
        ("GET", "/"): lambda p, r: (200, "text/plain; charset=utf-8", b"Ollama is running", {}),
        ("HEAD", "/"): lambda p, r: (200, "text/plain; charset=utf-8", b"Ollama is running", {}),
        ("GET", "/api/version"): lambda p, r: _json(200, {"version": "0.6.0"}),
        ("GET", "/api/tags"): _ollama_tags,
        ("POST", "/api/show"): _ollama_show,
        ("POST", "/api/chat"): lambda p, r: _ollama(p, r, generate=False),
        ("POST", "/api/generate"): lambda p, r: _ollama(p, r, generate=True),
        ("POST", "/v1/chat/completions"): _openai_chat,  # Ollama's OpenAI-compatible API
    },
}
_GENERATORS = {  # the routes that faults apply to
    _ROUTES["openai"][("POST", "/v1/chat/completions")],
    _ROUTES["anthropic"][("POST", "/v1/messages")],
    _ROUTES["ollama"][("POST", "/api/chat")],
    _ROUTES["ollama"][("POST", "/api/generate")],
    _ROUTES["ollama"][("POST", "/v1/chat/completions")],
}


class Simulator:
    """Fake LLM providers, one local port per provider name; see the module docstring.

    The server runs in its own thread; every method may be called from any thread.
    """

    def __init__(self, providers: Mapping[str, str] | None = None) -> None:
        """``providers`` maps each provider name to its protocol: openai, anthropic or ollama."""
        providers = DEFAULT_PROVIDERS if providers is None else providers
        for protocol in providers.values():
            if protocol not in _ROUTES:
                raise ValueError(
                    f"unknown protocol {protocol!r}; expected one of {sorted(_ROUTES)}"
                )
        self._providers: dict[str, _Provider] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        for name, protocol in providers.items():
            self.add_provider(name, protocol)

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> Simulator:
        """Start the event-loop thread and listen on every provider's port."""
        if self._thread is None:
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(
                target=self._loop.run_forever, name="llm-simulator", daemon=True
            )
            self._thread.start()
            self._sync(*self._providers.values())
        return self

    def stop(self) -> None:
        """Close every listener and connection (hung ones too), free the ports, join the thread."""
        if self._thread is None or self._loop is None:
            for p in self._providers.values():
                if p.sock is not None:
                    p.sock.close()
                    p.sock = None
            return
        try:
            self._run(*(p.close() for p in self._providers.values()))
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop.close()
            self._thread = self._loop = None

    def add_provider(self, name: str, protocol: str = "openai") -> str:
        """Add a listener named ``name`` speaking ``protocol``; return its base URL."""
        if protocol not in _ROUTES:
            raise ValueError(f"unknown protocol {protocol!r}; expected one of {sorted(_ROUTES)}")
        if name in self._providers:
            raise ValueError(f"provider {name!r} already exists")
        self._providers[name] = _Provider(name, protocol)
        self._sync(self._providers[name])
        return self.base_url(name)

    def base_url(self, provider: str) -> str:
        """The base URL to configure a client with (``/v1`` included for OpenAI)."""
        p = self._get(provider)
        return f"http://{HOST}:{p.port}" + ("/v1" if p.protocol == "openai" else "")

    def env(self) -> dict[str, str]:
        """Environment variables pointing clients here (LiteLLM reads OLLAMA_API_BASE)."""
        out = {}
        for key, protocol in [
            ("OPENAI_BASE_URL", "openai"),
            ("ANTHROPIC_BASE_URL", "anthropic"),
            ("OLLAMA_HOST", "ollama"),
            ("OLLAMA_API_BASE", "ollama"),
        ]:
            names = sorted(
                (n != protocol, n) for n, p in self._providers.items() if p.protocol == protocol
            )
            if names:
                out[key] = self.base_url(names[0][1])
        return out

    def set_fault(
        self,
        provider: str,
        fault: Fault | str,
        *,
        times: int | None = None,
        delay: float = 1.0,
        retry_after: float | str = 1,
    ) -> None:
        """Make ``provider`` misbehave for its next ``times`` requests (``None``: until cleared).

        ``delay`` (seconds) is for DELAY; ``retry_after`` (seconds, or an HTTP date) for
        RATE_LIMIT. REFUSE ignores ``times``: only clear_faults() or set_fault(OK) ends it.
        """
        p, fault = self._get(provider), Fault(str(fault))
        if times is not None and times < 1:
            raise ValueError("times must be None or at least 1")
        with p.lock:
            p.state = _FaultState(
                fault, None if fault is Fault.REFUSE else times, delay, retry_after
            )
        self._sync(p)

    def clear_faults(self) -> None:
        """Every provider back to normal; refused ports listen again (on the same port)."""
        for p in self._providers.values():
            with p.lock:
                p.state = _FaultState()
        self._sync(*self._providers.values())

    def set_reply(self, provider: str, text: str | None) -> None:
        """Answer with ``text`` instead of the default echo (``None`` restores the echo)."""
        p = self._get(provider)
        with p.lock:
            p.reply = text

    def requests(self, provider: str) -> list[dict[str, Any]]:
        """The latest MAX_RECORDED requests: dicts with method, path, query, headers, json.

        Header names are lower-case; ``json`` is the parsed body, or None.
        """
        p = self._get(provider)
        with p.lock:
            return [dict(r) for r in p.log]

    def request_count(self, provider: str) -> int:
        """How many requests reached ``provider`` (faulted ones too; refused ones never arrive)."""
        p = self._get(provider)
        with p.lock:
            return p.count

    def reset_requests(self, provider: str | None = None) -> None:
        """Forget the recorded requests of one provider, or of all."""
        for p in [self._get(provider)] if provider is not None else self._providers.values():
            with p.lock:
                p.log.clear()
                p.count = 0

    def _get(self, provider: str) -> _Provider:
        try:
            return self._providers[provider]
        except KeyError:
            raise KeyError(f"no provider {provider!r}; have {sorted(self._providers)}") from None

    def _sync(self, *providers: _Provider) -> None:
        if self._loop is not None:
            self._run(*(p.sync() for p in providers))

    def _run(self, *coroutines: Coroutine[Any, Any, None]) -> None:
        """Run coroutines on the loop thread and wait for them."""
        assert self._loop is not None

        async def run() -> None:
            await asyncio.gather(*coroutines)

        asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout=10)


def main() -> None:
    """Serve the default providers until Ctrl-C, printing the environment that points at them."""
    with Simulator() as sim:
        for key, value in sim.env().items():
            print(f"export {key}={value}")
        print("# LLM simulator running; Ctrl-C to stop", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
