"""``chat_completion(..., stream=True)``: the blocking driver of a streamed request.

:func:`open_stream` walks the providers (the flow decides, see :mod:`.stream_flow`) until
one streams content, and returns a :class:`Stream` that reads the rest. The summary a
normal response has (``provider``, ``cost``, ``usage``, ``attempts``, ``latency_ms``,
plus ``time_to_first_token_ms``) is :attr:`Stream.response` once the last chunk was read.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from . import providers
from .cached_calls import Answer, CachedCalls
from .exceptions import LLMStreamInterruptedError, LLMValidationError
from .flow import Call, Outcome, Request, Services
from .stream_assembly import replay_chunks
from .stream_flow import StreamSession
from .stream_timer import time_stream
from .telemetry.watch import watched

if TYPE_CHECKING:
    from .telemetry.facts import Fanout

__all__ = ["Stream", "StreamSummary", "open_stream", "replayed", "stream_call", "stream_request"]

Perform = Callable[[Any], Outcome | None]  # sleeps and ledger writes, as the client does them
S = TypeVar("S")


class StreamSummary:
    """What a stream knows of itself: the summary once it ended, the text so far.

    ``perform`` does the flow's ledger writes (awaitable for the async stream), ``live``
    is LiteLLM's stream (None: over, or replayed), ``chunks`` the chunks ready.
    """

    def __init__(
        self,
        session: StreamSession | None,
        perform: Any,
        live: Any,
        chunks: list[dict[str, Any]],
        response: dict[str, Any] | None = None,
        on_complete: Callable[[dict[str, Any]], Any] | None = None,
    ) -> None:
        self._session, self._perform, self._live = session, perform, live
        self._ready = deque(chunks)
        self._response = response  # set at once for an answer replayed from the cache
        self._on_complete = on_complete

    @property
    def response(self) -> dict[str, Any] | None:
        """The whole answer, as ``chat_completion`` returns it (None until the end)."""
        return self._response

    def _summary(self, key: str) -> Any:
        if self._response is not None:
            return self._response.get(key)
        if key == "provider" and self._session is not None:
            return self._session.provider
        return None

    provider = property(lambda self: self._summary("provider"), doc="The streaming provider.")
    cost = property(lambda self: self._summary("cost"), doc="USD charged (None until the end).")
    usage = property(lambda self: self._summary("usage"), doc="Charged usage (at the end).")
    attempts = property(lambda self: self._summary("attempts"), doc="Every attempt, at the end.")
    latency_ms = property(lambda self: self._summary("latency_ms"), doc="Whole stream, in ms.")
    cached = property(lambda self: self._summary("cached"), doc="Replayed from the cache.")
    time_to_first_token_ms = property(
        lambda self: self._summary("time_to_first_token_ms"), doc="From the call to the first text."
    )

    @property
    def text(self) -> str:
        """The text delivered so far."""
        if self._session is None:
            return (self._response or {})["choices"][0]["message"].get("content") or ""
        return self._session.assembly.text


class Stream(StreamSummary):
    """A streamed answer: iterate it for OpenAI-shaped ``chat.completion.chunk`` dicts.

    Use it as a context manager (or call :meth:`close`): leaving early closes the
    connection and settles the ledger with what arrived. A failure after the first
    content raises :class:`~leadfactory.llm.exceptions.LLMStreamInterruptedError`.
    """

    # -- reading -----------------------------------------------------------------------

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return self

    def __next__(self) -> dict[str, Any]:
        while not self._ready:
            if self._live is None:
                raise StopIteration
            self._read()
        return self._ready.popleft()

    def _read(self) -> None:
        session = self._session
        assert session is not None
        try:
            raw = providers.next_chunk(self._live)
        except Exception as error:
            outcome: Outcome | None = session.cut(error, stream=self._live)
        else:
            outcome = session.step(raw, self._live)
        if outcome is not None:
            self._end(outcome)
        self._ready.extend(session.drain())

    def _end(self, outcome: Outcome) -> None:
        """Close the connection and let the flow settle ``outcome`` (it may raise)."""
        live, self._live = self._live, None
        session, perform = self._session, self._perform
        assert session is not None and perform is not None
        with contextlib.suppress(Exception):
            providers.close_stream(live)
        operation = session.advance(outcome)
        while not session.done:
            operation = session.advance(perform(operation))
        self._response = session.finish(operation)
        session.pending += session.last_chunks()
        if self._on_complete is not None:
            self._on_complete(self._response)

    def close(self) -> None:
        """Stop reading: the connection is closed and the ledger settled with what arrived."""
        if self._live is None:
            return
        assert self._session is not None
        self._ready.clear()
        with contextlib.suppress(LLMStreamInterruptedError):
            self._end(self._session.cut(None, stream=self._live, abandoned=True))

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_live", None) is not None:
            self.close()


def stream_request(kwargs: dict[str, Any]) -> bool | None:
    """Take ``stream`` and ``stream_options`` out of ``kwargs``: None when the call is not
    streamed, else whether the caller asked for a final usage chunk."""
    stream = kwargs.pop("stream", None)
    options = kwargs.pop("stream_options", None)
    if stream is not None and not isinstance(stream, bool):
        raise LLMValidationError(
            f"Invalid stream: expected True or False, got {stream!r}", metadata={"field": "stream"}
        )
    if options is not None and (
        not stream
        or not isinstance(options, dict)
        or set(options) - {"include_usage"}
        or not isinstance(options.get("include_usage", False), bool)
    ):
        raise LLMValidationError(
            "Invalid stream_options: expected {'include_usage': True or False}, with stream=True",
            metadata={"field": "stream_options"},
        )
    return bool((options or {}).get("include_usage")) if stream else None


def replayed(kind: type[S], response: dict[str, Any], include_usage: bool) -> S:
    """A cached answer (``cached`` True, ``cost`` 0) as a stream of ``kind``."""
    response["time_to_first_token_ms"] = response.get("latency_ms")
    return kind(None, None, None, replay_chunks(response, include_usage), response=response)


def stream_call(
    cached: CachedCalls | None,
    request: Request,
    include_usage: bool,
    services: Callable[[], Services],
    perform: Perform,
    deliver: Callable[[Answer], dict[str, Any]],
    observer: Fanout | None = None,
) -> Stream:
    """The client's ``stream=True``: a cache hit replayed (``cached``: caching is on for
    the call), or a new stream, stored in the cache once it completed."""
    hit = cached.stream_hit(request) if cached is not None else None
    if hit is not None:
        return replayed(Stream, deliver(hit), include_usage)
    providers.load_litellm()  # seconds, the first time: before any rate-limit permit
    store = cached.stream_store(request) if cached is not None else None
    return open_stream(session(services(), request, include_usage, observer), perform, store)


def session(
    services: Services, request: Request, include_usage: bool, observer: Fanout | None
) -> StreamSession:
    """A streamed request's session, its flow seen by telemetry when it is on."""
    flow = watched(observer, services, request)
    return StreamSession(services, request, include_usage, flow)


def open_stream(
    session: StreamSession,
    perform: Perform,
    on_complete: Callable[[dict[str, Any]], Any] | None = None,
) -> Stream:
    """Walk the providers until one streams content; the :class:`Stream` reading it."""
    send: Outcome | None = None
    try:
        while True:
            operation = session.advance(send)
            if not isinstance(operation, Call):
                send = perform(operation)
                continue
            send, live = _first_content(session, operation)
            if live is not None:
                return Stream(session, perform, live, session.drain(), on_complete=on_complete)
    except BaseException:
        session.flow.close()  # interrupted mid-call: the flow settles (sent) or releases
        raise


def _first_content(session: StreamSession, call: Call) -> tuple[Outcome | None, Any]:
    """Read ``call``'s stream to its first content: (None, the stream), or (the outcome, None)."""
    arguments, timer = session.begin(call)
    live = None
    try:
        with time_stream(timer):
            live = providers.open_stream(arguments)
            while (raw := providers.next_chunk(live)) is not None:
                if session.take(raw):
                    opened, live = live, None
                    return None, opened
            return session.ended(live), None
    except Exception as error:
        return Outcome(error=error), None
    finally:
        if live is not None:  # this attempt is over: its chunks are dropped
            with contextlib.suppress(Exception):
                providers.close_stream(live)
