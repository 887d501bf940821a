"""The transport of this process's async HTTP clients (:mod:`.http_clients`, one per loop).

LiteLLM's aiohttp transport, the one bare LiteLLM sends its async calls through:
httpx's own async pool (httpcore) costs time quadratic in connections x queued requests
(at 100 concurrent calls, a fifth to a third of aiohttp's throughput). A request's
timeout stays a deadline for the whole exchange: sending it and reading its headers,
then each read of its body (for a streamed call, the
:class:`~.stream_timer.StreamTimer`'s deadlines) run under ``asyncio.timeout_at``.
Running out raises ``httpx.ConnectTimeout`` while no connection was had (nothing was
sent: :mod:`.charges` charges nothing), otherwise ``httpx.ReadTimeout``. LiteLLM maps
aiohttp's own errors to httpx's.

Of LiteLLM this uses ``AsyncHTTPHandler.create_async_transport`` and its transport's
public ``client`` and ``get_valid_client_session``; to learn whether a connection was
had, an aiohttp trace is appended to that session's ``trace_configs`` (aiohttp takes
traces only when a session is built, and LiteLLM builds it). Should LiteLLM replace the
session, the trace joins the new one at its next request.

When LiteLLM's aiohttp transport is off (``DISABLE_AIOHTTP_TRANSPORT=True``), httpx's
transport is used, with the deadline applied to each socket operation.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import AsyncIterator, Callable
from contextvars import ContextVar
from typing import Any

import httpcore
import httpx

from .http_clients import _LIMITS, _deadline_of, _left, _received, _until

__all__ = ["async_transport"]


def async_transport() -> httpx.AsyncBaseTransport:
    """A new transport for one event loop's clients (call it on that loop)."""
    from litellm.llms.custom_httpx.aiohttp_transport import LiteLLMAiohttpTransport
    from litellm.llms.custom_httpx.http_handler import AsyncHTTPHandler

    litellm_transport = AsyncHTTPHandler.create_async_transport()
    if isinstance(litellm_transport, LiteLLMAiohttpTransport):
        return _AiohttpDeadlineTransport(litellm_transport)
    return _AsyncDeadlineTransport()  # aiohttp's is off: httpx's (LiteLLM's would be None)


_EXPIRED = "the request's timeout passed before it was over"


# -- on LiteLLM's aiohttp transport -------------------------------------------------------


class _Exchange:
    """What the request being sent in this context has reached."""

    __slots__ = ("connected",)

    def __init__(self) -> None:
        self.connected = False


_exchange: ContextVar[_Exchange | None] = ContextVar("leadfactory_llm_exchange", default=None)


async def _on_connection(session: Any, context: Any, params: Any) -> None:
    exchange = _exchange.get()
    if exchange is not None:
        exchange.connected = True


def _connection_trace() -> Any:
    """An aiohttp trace that marks the exchange of this context as connected."""
    import aiohttp

    trace = aiohttp.TraceConfig()
    trace.on_connection_create_end.append(_on_connection)
    trace.on_connection_reuseconn.append(_on_connection)
    trace.freeze()
    return trace


def _loop_time(deadline: float | None) -> float | None:
    """``deadline`` (``time.monotonic``) on the running loop's clock."""
    if deadline is None:
        return None
    return asyncio.get_running_loop().time() + (deadline - time.monotonic())


class _AiohttpDeadlineTransport(httpx.AsyncBaseTransport):
    def __init__(self, transport: Any) -> None:
        self._transport = transport
        self._trace = _connection_trace()
        self._traced: Any = None  # the aiohttp session the trace was added to
        self._closer: AsyncIterator[None] | None = None

    async def _new_session(self) -> None:
        # LiteLLM builds the session (its connector settings) on the first request.
        session = self._transport.get_valid_client_session()
        if self._trace not in session.trace_configs:
            session.trace_configs.append(self._trace)
        self._traced = session
        self._closer = _closed_with_the_loop(session)  # the one of a replaced session, too
        await anext(self._closer)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        deadline = _deadline_of(request)
        if self._transport.client is not self._traced:
            await self._new_session()
        exchange = _Exchange()
        token = _exchange.set(exchange)
        try:
            async with asyncio.timeout_at(_loop_time(deadline())) as scope:
                response = await self._transport.handle_async_request(request)
        except TimeoutError as error:
            if not scope.expired():
                raise
            expired = httpx.ReadTimeout if exchange.connected else httpx.ConnectTimeout
            raise expired(_EXPIRED, request=request) from error
        finally:
            _exchange.reset(token)
        _received(response)
        response.stream = _AiohttpDeadlineBody(response.stream, deadline, request)
        return response

    async def aclose(self) -> None:
        """Nothing: the session closes with its loop (:func:`_closed_with_the_loop`), or
        LiteLLM's transport closes it when dropped, as far as a closed loop allows."""


async def _closed_with_the_loop(session: Any) -> AsyncIterator[None]:
    """Waits, suspended, for its event loop to shut its async generators down
    (``asyncio.run`` does on its way out), then closes ``session`` (LiteLLM's, built for
    this transport alone) and its connections while the loop still runs: after, only the
    garbage collector would."""
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            await session.close()


class _AiohttpDeadlineBody(httpx.AsyncByteStream):
    def __init__(
        self, stream: Any, deadline: Callable[[], float | None], request: httpx.Request
    ) -> None:
        self._stream, self._deadline, self._request = stream, deadline, request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        chunks = aiter(self._stream)
        try:
            while True:
                when = _loop_time(self._deadline())
                if when is None:
                    chunk = await anext(chunks, None)
                else:
                    try:
                        async with asyncio.timeout_at(when) as scope:
                            chunk = await anext(chunks, None)
                    except TimeoutError as error:
                        if not scope.expired():
                            raise
                        raise httpx.ReadTimeout(_EXPIRED, request=self._request) from error
                if chunk is None:
                    return
                yield chunk
        finally:
            await chunks.aclose()  # left early: LiteLLM's stream closes the response

    async def aclose(self) -> None:
        await self._stream.aclose()


# -- on httpx's transport: the deadline at each socket operation ---------------------------


class _AsyncDeadlineStream(httpcore.AsyncNetworkStream):
    def __init__(self, stream: httpcore.AsyncNetworkStream) -> None:
        self._stream = stream

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._stream.read(max_bytes, _left(timeout, httpcore.ReadTimeout))

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._stream.write(buffer, _left(timeout, httpcore.WriteTimeout))

    async def aclose(self) -> None:
        await self._stream.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        left = _left(timeout, httpcore.ConnectTimeout)
        return _AsyncDeadlineStream(
            await self._stream.start_tls(ssl_context, server_hostname, left)
        )

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _AsyncDeadlineBackend(httpcore.AsyncNetworkBackend):
    def __init__(self, backend: httpcore.AsyncNetworkBackend) -> None:
        self._backend = backend

    async def connect_tcp(
        self, host: str, port: int, timeout: float | None = None, **kw: Any
    ) -> Any:
        left = _left(timeout, httpcore.ConnectTimeout)
        return _AsyncDeadlineStream(await self._backend.connect_tcp(host, port, left, **kw))

    async def connect_unix_socket(self, path: str, timeout: float | None = None, **kw: Any) -> Any:
        left = _left(timeout, httpcore.ConnectTimeout)
        return _AsyncDeadlineStream(await self._backend.connect_unix_socket(path, left, **kw))

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


class _AsyncDeadlineBody(httpx.AsyncByteStream):
    def __init__(self, stream: Any, deadline: Callable[[], float | None]) -> None:
        self._stream, self._deadline = stream, deadline

    async def __aiter__(self) -> AsyncIterator[bytes]:
        chunks = aiter(self._stream)
        while True:
            with _until(self._deadline()):
                chunk = await anext(chunks, None)
            if chunk is None:
                return
            yield chunk

    async def aclose(self) -> None:
        await self._stream.aclose()


class _AsyncDeadlineTransport(httpx.AsyncHTTPTransport):
    # httpx builds its connection pool itself and takes no network backend: the pool's
    # backend is wrapped after the fact.
    def __init__(self) -> None:
        super().__init__(limits=_LIMITS)
        self._pool._network_backend = _AsyncDeadlineBackend(self._pool._network_backend)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        deadline = _deadline_of(request)
        with _until(deadline()):
            response = await super().handle_async_request(request)
        _received(response)
        response.stream = _AsyncDeadlineBody(response.stream, deadline)
        return response
