"""LiteLLM's own call logging, skipped for the client's calls when nothing listens to it.

After every successful call LiteLLM hands its success handler to a thread pool (async:
to the event loop as well): it rebuilds the whole call as a logging payload, prices it
again and offers it to the callbacks configured on the ``litellm`` module. About 0.6 ms
of CPU per call, on a thread that takes the GIL back while the client is still
settling the call's ledger row, so the caller waits for it. The client prices,
records, logs and traces every call itself; when no LiteLLM callback and no LiteLLM
budget is configured, that work has no reader.

LiteLLM marks its own nested calls with a context variable that skips exactly this
(``litellm._internal_context.is_internal_call``: no success handler, no async failure
handler, no budget binding); :func:`unlogged` sets it around one call, in this context
only (no module global changes, other threads and tasks are untouched). A failed
blocking call ignores that flag: LiteLLM runs its failure handler on the caller's thread
(a logging payload, secret redaction over it: milliseconds per failure, so a failover
waited for it). :func:`unlogged` also marks the call's failures as the caller's to
handle (``resent_on``: not logged as the request's outcome, not retried by LiteLLM),
which is what they are: the client retries, falls back and logs. Both are private to
LiteLLM: if a version lacks them, calls are made as before. When a LiteLLM callback or
``litellm.max_budget`` is set, both are left alone and LiteLLM logs as always.

A stream does not read that flag: LiteLLM's blocking stream hands every chunk to that
thread pool (where each one runs ``asyncio.run`` of its async success handler: ~0.2 ms
of CPU per chunk) and the whole assembled answer at the end; its async stream logs the
assembled answer in a task on the event loop. :func:`unlogged_stream` turns these off
on the one stream object the client was given, under the same condition: the client's
first token no longer waits behind the previous stream's backlog of chunk logging
whenever it lets go of the GIL (its ledger reservation).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any

__all__ = ["listened", "unlogged", "unlogged_stream"]

# The module attributes where LiteLLM keeps what listens to its calls.
_LISTENERS = (
    "callbacks",
    "success_callback",
    "_async_success_callback",
    "failure_callback",
    "_async_failure_callback",
    "input_callback",
    "service_callback",
)
_Marks = tuple[ContextVar[bool] | None, Callable[[Callable[[Exception], bool]], Any] | None]
_marks: _Marks = (None, None)
_looked = False


def _litellm_marks() -> _Marks:
    """LiteLLM's ``is_internal_call`` flag and ``resent_on`` (None where missing)."""
    global _marks, _looked
    if not _looked:
        try:
            from litellm._internal_context import is_internal_call
        except ImportError:  # a LiteLLM without it: log as it always does
            is_internal_call = None
        try:
            from litellm._internal_context import resent_on
        except ImportError:  # without it, a failure is logged as before
            resent_on = None
        _marks = (
            is_internal_call if isinstance(is_internal_call, ContextVar) else None,
            resent_on if callable(resent_on) else None,
        )
        _looked = True
    return _marks


def _every_failure(_error: Exception) -> bool:
    return True


def listened(litellm: Any) -> bool:
    """Whether anything configured on the ``litellm`` module reads its call logging
    (a callback, a budget, or LiteLLM's own response cache)."""
    if getattr(litellm, "max_budget", 0) or getattr(litellm, "cache", None) is not None:
        return True
    return any(getattr(litellm, name, None) for name in _LISTENERS)


@contextlib.contextmanager
def unlogged(litellm: Any) -> Iterator[None]:
    """The LiteLLM call made in this block skips LiteLLM's own logging, unless listened to."""
    flag, handled_here = _litellm_marks()
    if flag is None or listened(litellm):
        yield
        return
    token = flag.set(True)
    try:
        if handled_here is None:
            yield
        else:  # a failure is the client's to retry, fall back from and log
            with handled_here(_every_failure):
                yield
    finally:
        flag.reset(token)


def _nothing(*_args: Any, **_kwargs: Any) -> None:
    return None


async def _nothing_later(*_args: Any, **_kwargs: Any) -> None:
    return None


def unlogged_stream(litellm: Any, stream: Any) -> Any:
    """``stream`` (LiteLLM's ``CustomStreamWrapper``, blocking or async) with its
    per-chunk and end-of-stream logging turned off on this object alone, unless
    listened to."""
    logging_obj = getattr(stream, "logging_obj", None)
    if listened(litellm) or logging_obj is None:
        return stream
    stream.run_success_logging_and_cache_storage = _nothing  # blocking: each chunk's
    logging_obj.success_handler = _nothing  # blocking: the assembled answer's, at the end
    logging_obj.dispatch_success_handlers = _nothing_later  # async: a task on the loop
    return stream
