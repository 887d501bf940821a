"""``achat_completion(..., stream=True)``: the asyncio driver of a streamed request.

The twin of :mod:`.streaming`, with the same decisions (:mod:`.stream_flow`): it awaits
the reads, the sleeps and the ledger writes (on the ledger's writer thread) instead of
blocking on them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from . import providers
from .cached_calls import Answer, CachedCalls
from .exceptions import LLMStreamInterruptedError
from .flow import Call, Outcome, Request, Services
from .stream_flow import StreamSession
from .stream_timer import time_stream
from .streaming import StreamSummary, replayed, session

if TYPE_CHECKING:
    from .telemetry.facts import Fanout

__all__ = ["AsyncStream", "aopen_stream", "astream_call"]

APerform = Callable[[Any], Awaitable[Outcome | None]]


class AsyncStream(StreamSummary):
    """A streamed answer for ``async for``: OpenAI-shaped ``chat.completion.chunk`` dicts.

    Use it with ``async with`` (or call :meth:`aclose`): leaving early closes the
    connection and settles the ledger with what arrived. A failure after the first
    content raises :class:`~leadfactory.llm.exceptions.LLMStreamInterruptedError`.
    """

    def __aiter__(self) -> AsyncStream:
        return self

    async def __anext__(self) -> dict[str, Any]:
        while not self._ready:
            if self._live is None:
                raise StopAsyncIteration
            await self._read()
        return self._ready.popleft()

    async def _read(self) -> None:
        session = self._session
        assert session is not None
        try:
            raw = await providers.anext_chunk(self._live)
        except Exception as error:
            outcome: Outcome | None = session.cut(error, stream=self._live)
        else:
            outcome = session.step(raw, self._live)
        if outcome is not None:
            await self._end(outcome)
        self._ready.extend(session.drain())

    async def _end(self, outcome: Outcome) -> None:
        """Close the connection and let the flow settle ``outcome`` (it may raise)."""
        live, self._live = self._live, None
        session, perform = self._session, self._perform
        assert session is not None and perform is not None
        with contextlib.suppress(Exception):
            await providers.aclose_stream(live)
        operation = session.advance(outcome)
        while not session.done:
            operation = session.advance(await perform(operation))
        self._response = session.finish(operation)
        session.pending += session.last_chunks()
        if self._on_complete is not None:
            self._on_complete(self._response)

    async def aclose(self) -> None:
        """Stop reading: the connection is closed and the ledger settled with what arrived."""
        if self._live is None:
            return
        assert self._session is not None
        self._ready.clear()
        with contextlib.suppress(LLMStreamInterruptedError):
            await self._end(self._session.cut(None, stream=self._live, abandoned=True))

    async def __aenter__(self) -> AsyncStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __del__(self) -> None:
        """Dropped unread without :meth:`aclose`: settled now, its writes queued."""
        session, live = getattr(self, "_session", None), getattr(self, "_live", None)
        if session is None or live is None or session.done:
            return
        self._live = None
        with contextlib.suppress(Exception):
            operation = session.advance(session.cut(None, stream=live, abandoned=True))
            while not session.done:
                session.services.settle_on_close(operation)  # type: ignore[misc]
                operation = session.advance(Outcome())


async def astream_call(
    cached: CachedCalls | None,
    request: Request,
    include_usage: bool,
    services: Callable[[], Services],
    perform: APerform,
    deliver: Callable[[Answer], Awaitable[dict[str, Any]]],
    observer: Fanout | None = None,
) -> AsyncStream:
    """``achat_completion(stream=True)``: as :func:`.streaming.stream_call`, awaited."""
    hit = cached.stream_hit(request) if cached is not None else None
    if hit is not None:
        return replayed(AsyncStream, await deliver(hit), include_usage)
    store = cached.stream_store(request) if cached is not None else None
    return await aopen_stream(session(services(), request, include_usage, observer), perform, store)


async def aopen_stream(
    session: StreamSession,
    perform: APerform,
    on_complete: Callable[[dict[str, Any]], Any] | None = None,
) -> AsyncStream:
    """Walk the providers until one streams content; the :class:`AsyncStream` reading it."""
    if not providers.litellm_loaded():  # seconds of import: not on the event loop
        await asyncio.to_thread(providers.load_litellm)
    send: Outcome | None = None
    try:
        while True:
            operation = session.advance(send)
            if not isinstance(operation, Call):
                send = await perform(operation)
                continue
            send, live = await _first_content(session, operation)
            if live is not None:
                return AsyncStream(session, perform, live, session.drain(), on_complete=on_complete)
    except BaseException:
        session.flow.close()  # cancelled mid-call: the flow settles (sent) or releases
        raise


async def _first_content(session: StreamSession, call: Call) -> tuple[Outcome | None, Any]:
    """Read ``call``'s stream to its first content: (None, the stream), or (the outcome, None)."""
    arguments, timer = session.begin(call)
    live = None
    try:
        with time_stream(timer):
            live = await providers.aopen_stream(arguments)
            while (raw := await providers.anext_chunk(live)) is not None:
                if session.take(raw):
                    opened, live = live, None
                    return None, opened
            return session.ended(live), None
    except Exception as error:
        return Outcome(error=error), None
    finally:
        if live is not None:  # this attempt is over: its chunks are dropped
            with contextlib.suppress(Exception):
                await providers.aclose_stream(live)
