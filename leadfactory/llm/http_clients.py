"""The HTTP clients LiteLLM is handed per call: one set per process, bounded by a deadline.

LiteLLM keeps the HTTP clients it builds in a process-wide cache, and a process forked
after a call inherits them: parent and children then share pooled keep-alive sockets
and read each other's answers. :func:`client_for` gives LiteLLM (``client=``) clients
of this process instead: a forked child starts with none (``os.register_at_fork``) and
builds its own; async ones are kept per event loop, whose sockets they are bound to.

Their transport makes a request's timeout a deadline for the whole exchange: connect,
send, headers and every read of the body each wait at most what is left of it, so a
server that trickles bytes cannot keep an attempt alive past its timeout (httpx's own
timeouts are per socket operation). Running out raises httpx's timeout exceptions, which
LiteLLM and :mod:`~leadfactory.llm.classify` already read as a timeout. Async clients
send through LiteLLM's aiohttp transport (:mod:`.http_async`).

Imported on the first provider call (it needs httpx and the OpenAI SDK, which come with
LiteLLM); nothing here sets a LiteLLM global.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import ssl
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from typing import Any

import httpcore
import httpx

from .stream_timer import running_timer

__all__ = ["checked_before_sending", "client_for", "watch_answers"]

# LiteLLM's route prefix -> which kind of client its handler accepts as ``client=``.
_SDK_ROUTES = frozenset({"openai"})  # the OpenAI SDK: openai/, Ollama's /v1, custom endpoints
_HANDLER_ROUTES = frozenset({"anthropic", "ollama", "ollama_chat"})  # LiteLLM's HTTPHandler
_LIMITS = httpx.Limits(max_connections=1000, max_keepalive_connections=100, keepalive_expiry=15)
_DRAIN = 0.002  # seconds a body closed before its end may take to end (see _DeadlineBody)

# The monotonic time by which the request being sent in this context must be over.
_deadline: ContextVar[float | None] = ContextVar("leadfactory_llm_deadline", default=None)
# The HTTP statuses of the responses received for the call being made in this context.
_statuses: ContextVar[list[int] | None] = ContextVar("leadfactory_llm_statuses", default=None)
# What must hold before a request of this context leaves: it raises when it does not.
_before_send: ContextVar[Callable[[], None] | None] = ContextVar(
    "leadfactory_llm_before_send", default=None
)


@contextlib.contextmanager
def checked_before_sending(check: Callable[[], None]) -> Iterator[None]:
    """Have every request sent in this context (by this process's sync clients) wait for
    ``check()`` first, and not be sent when it raises: the sync client's reservation,
    read while LiteLLM built the request (:mod:`.deferred`)."""
    token = _before_send.set(check)
    try:
        yield
    finally:
        _before_send.reset(token)


def watch_answers() -> list[int]:
    """Start recording, for the call this context is about to make, the HTTP status of
    every response its transport receives; returns the list they are appended to."""
    statuses: list[int] = []
    _statuses.set(statuses)
    return statuses


def _received(response: httpx.Response) -> None:
    statuses = _statuses.get()
    if statuses is not None:
        statuses.append(response.status_code)


def client_for(arguments: Mapping[str, Any], *, asynchronous: bool) -> Any | None:
    """This process's client for the LiteLLM call ``arguments`` (None: a route it cannot take).

    ``asynchronous`` calls must come from the event loop that will run them.
    """
    route = str(arguments["model"]).partition("/")[0]
    if route in _SDK_ROUTES:
        key = arguments.get("api_key")
        if not key:  # the SDK would read OPENAI_API_KEY itself: leave it to LiteLLM
            return None
        digest = hashlib.sha256(str(key).encode()).hexdigest()
        name: tuple[str, ...] = ("sdk", str(arguments.get("api_base") or ""), digest)
    elif route in _HANDLER_ROUTES:
        name = ("handler",)
    else:
        return None
    pool = _pools.pool(asyncio.get_running_loop() if asynchronous else None)
    return pool.client(name, lambda: _build(pool, name, arguments))


# -- one pool of connections per process (and per event loop) ---------------------------


class _Pool:
    """One transport (its connections) and the clients built on it."""

    def __init__(self, asynchronous: bool) -> None:
        self.asynchronous = asynchronous
        self.transport: httpx.BaseTransport | httpx.AsyncBaseTransport
        if asynchronous:
            from .http_async import async_transport

            self.transport = async_transport()
        else:
            self.transport = _DeadlineTransport()
        self.http: httpx.Client | httpx.AsyncClient = (
            httpx.AsyncClient(transport=self.transport, follow_redirects=True)  # type: ignore[arg-type]
            if asynchronous
            else httpx.Client(transport=self.transport, follow_redirects=True)  # type: ignore[arg-type]
        )
        self._clients: dict[tuple[str, ...], Any] = {}
        self._lock = threading.Lock()

    def client(self, name: tuple[str, ...], build: Callable[[], Any]) -> Any:
        client = self._clients.get(name)
        if client is None:
            with self._lock:
                client = self._clients.get(name)
                if client is None:
                    client = self._clients[name] = build()
        return client


class _Pools:
    """This process's pools: one for blocking calls, one per live event loop."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sync: _Pool | None = None
        self._loops: dict[int, tuple[weakref.ref[asyncio.AbstractEventLoop], _Pool]] = {}
        self._inherited: list[Any] = []

    def pool(self, loop: asyncio.AbstractEventLoop | None) -> _Pool:
        if loop is None:
            if self._sync is None:
                with self._lock:
                    if self._sync is None:
                        self._sync = _Pool(asynchronous=False)
            return self._sync
        entry = self._loops.get(id(loop))
        if entry is not None and entry[0]() is loop:
            return entry[1]
        with self._lock:
            for key, (ref, _) in list(self._loops.items()):  # forget closed loops' sockets
                if not _open(ref()):
                    del self._loops[key]
            pool = _Pool(asynchronous=True)
            self._loops[id(loop)] = (weakref.ref(loop), pool)
        return pool

    def forget(self) -> None:
        """In a forked child: drop the parent's clients (their sockets are the parent's).

        Those of an event loop not closed are kept, never finalized in the child: aiohttp
        closing their connections would unregister the parent's sockets from the epoll
        instance that parent and child share (a closed loop's are left alone by aiohttp).
        """
        kept = [pool for ref, pool in self._loops.values() if _open(ref())]
        inherited = [*self._inherited, *kept]
        self.__init__()  # type: ignore[misc]
        self._inherited = inherited


def _open(loop: asyncio.AbstractEventLoop | None) -> bool:
    return loop is not None and not loop.is_closed()


_pools = _Pools()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_pools.forget)


def _build(pool: _Pool, name: tuple[str, ...], arguments: Mapping[str, Any]) -> Any:
    if name[0] == "sdk":
        import openai

        sdk = openai.AsyncOpenAI if pool.asynchronous else openai.OpenAI
        return sdk(
            api_key=str(arguments["api_key"]),
            base_url=arguments.get("api_base") or None,
            http_client=pool.http,  # type: ignore[arg-type]
            max_retries=0,
        )
    from litellm.llms.custom_httpx.http_handler import AsyncHTTPHandler, HTTPHandler

    if pool.asynchronous:
        return AsyncHTTPHandler(transport=pool.transport)  # type: ignore[arg-type]
    return HTTPHandler(client=pool.http)  # type: ignore[arg-type]


# -- the deadline -----------------------------------------------------------------------


def _deadline_of(request: httpx.Request) -> Callable[[], float | None]:
    """When each part of the exchange must be over: the request's read timeout from now
    (the whole exchange by then), or, for a streamed call, its timer's deadlines."""
    timer = running_timer()
    if timer is not None:
        return timer.deadline
    seconds = (request.extensions.get("timeout") or {}).get("read")
    deadline = None if seconds is None else time.monotonic() + float(seconds)
    return lambda: deadline


@contextlib.contextmanager
def _until(deadline: float | None) -> Iterator[None]:
    token = _deadline.set(deadline)
    try:
        yield
    finally:
        _deadline.reset(token)


def _left(timeout: float | None, expired: type[Exception]) -> float | None:
    """``timeout`` for one socket operation, cut to what is left of the deadline."""
    deadline = _deadline.get()
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise expired("the request's timeout passed before it was over")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        left = _left(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._stream.start_tls(ssl_context, server_hostname, left))

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    def __init__(self, backend: httpcore.NetworkBackend) -> None:
        self._backend = backend

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, **kw: Any) -> Any:
        left = _left(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._backend.connect_tcp(host, port, left, **kw))

    def connect_unix_socket(self, path: str, timeout: float | None = None, **kw: Any) -> Any:
        left = _left(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._backend.connect_unix_socket(path, left, **kw))

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


class _DeadlineBody(httpx.SyncByteStream):
    """A response body read under the deadline of its request.

    Closed before its end, as a streamed answer is once its reader has the last event
    (``data: [DONE]``) and not the chunked body's terminator behind it, it reads on for
    ``_DRAIN`` seconds at most: a body over by then leaves its connection in the pool for
    the next request, instead of a new connection (over TLS, a new handshake) per stream.
    """

    def __init__(self, stream: Any, deadline: Callable[[], float | None]) -> None:
        self._stream, self._deadline = stream, deadline
        self._chunks: Iterator[bytes] | None = None  # being read, not to its end yet

    def __iter__(self) -> Iterator[bytes]:
        self._chunks = chunks = iter(self._stream)
        while True:  # _until inlined: this runs for every piece of a streamed body
            token = _deadline.set(self._deadline())
            try:
                chunk = next(chunks, None)
            finally:
                _deadline.reset(token)
            if chunk is None:
                self._chunks = None
                return
            yield chunk

    def close(self) -> None:
        chunks, self._chunks = self._chunks, None
        if chunks is not None:  # a few pieces, or the wait, at most; a failed read closes
            with contextlib.suppress(Exception), _until(time.monotonic() + _DRAIN):
                for _ in range(4):
                    if next(chunks, None) is None:
                        break
        self._stream.close()


# httpx builds its connection pool itself and takes no network backend, so the pool's
# backend is wrapped after the fact (httpcore's pools take one: ``network_backend=``).


class _DeadlineTransport(httpx.HTTPTransport):
    def __init__(self) -> None:
        super().__init__(limits=_LIMITS)
        self._pool._network_backend = _DeadlineBackend(self._pool._network_backend)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        check = _before_send.get()
        if check is not None:
            check()  # raises: nothing is sent
        deadline = _deadline_of(request)
        with _until(deadline()):
            response = super().handle_request(request)
        _received(response)
        response.stream = _DeadlineBody(response.stream, deadline)
        return response
