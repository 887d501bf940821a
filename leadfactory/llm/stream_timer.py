"""The read deadlines of a streamed call, and how its HTTP transport finds them.

The stream drivers (:mod:`.streaming`, :mod:`.astream`) make a :class:`StreamTimer` per
attempt and send its request inside :func:`time_stream`; the transport of
:mod:`.http_clients` reads :func:`running_timer` for each request it sends. No httpx
here: the drivers import this when the client is imported, the transport on the first call.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextvars import ContextVar

__all__ = ["StreamTimer", "running_timer", "time_stream"]


class StreamTimer:
    """The read deadlines of one streamed call, instead of one deadline for all of it.

    Until :meth:`content_arrived`, everything (connecting, the headers, every read) must
    be over ``first_token`` seconds after the start; after it, each read waits at most
    ``idle`` seconds, however long the whole stream lasts.
    """

    def __init__(self, first_token: float, idle: float) -> None:
        self.first_by = time.monotonic() + first_token
        self.idle = idle
        self.streaming = False

    def deadline(self) -> float:
        return time.monotonic() + self.idle if self.streaming else self.first_by

    def content_arrived(self) -> None:
        self.streaming = True


# The timer of the streamed call this context is about to make (None: not a stream).
_stream_timer: ContextVar[StreamTimer | None] = ContextVar("leadfactory_llm_stream", default=None)


@contextlib.contextmanager
def time_stream(timer: StreamTimer) -> Iterator[StreamTimer]:
    """Requests sent in this block (a streamed call) are timed by ``timer``."""
    token = _stream_timer.set(timer)
    try:
        yield timer
    finally:
        _stream_timer.reset(token)


def running_timer() -> StreamTimer | None:
    """The timer of the streamed call being made in this context (None: not a stream)."""
    return _stream_timer.get()
