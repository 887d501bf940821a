"""The decisions of a streamed request, shared by the sync and the async stream.

A streamed request walks the providers with the same :func:`~leadfactory.llm.flow.fallback_flow`
as any other: reservations, retries, backoff, fallback, cooldowns, budgets and rate
limits are its. What differs is how a ``Call`` is performed. The driver opens the
stream and reads it until its first content (text or a tool-call delta; a role-only or
empty chunk is not content):

- a failure before it (an error status, an error event, a cut, the first-token
  timeout) or a stream that ends without content is the ``Call``'s outcome, and the
  flow retries or falls back as for any call; the chunks read from that attempt are
  dropped, so no text of a failed provider reaches the caller;
- once content arrives, the flow stays suspended on that ``Call`` while the caller reads
  the stream. Its end is the ``Call``'s outcome: the assembled answer, with the usage
  the provider reported (:meth:`StreamSession.ended`), settled and answered by the flow
  as any answer; or :class:`~leadfactory.llm.exceptions.LLMStreamInterruptedError`
  (:meth:`StreamSession.cut`), which the flow settles (an estimate, marked) and raises,
  never retried nor continued elsewhere. A caller that leaves early is settled the same
  way, as ``Cancelled``.

:class:`StreamSession` holds that state and makes those decisions; the drivers
(:mod:`.streaming`, :mod:`.astream`) only read, sleep and write.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from .classify import classify
from .exceptions import LLMStreamInterruptedError
from .flow import Call, Outcome, Request, Services, fallback_flow
from .stream_assembly import Assembly, finish_received, read_chunk, reported_usage
from .stream_timer import StreamTimer

__all__ = ["StreamSession"]


class StreamSession:
    """One streamed request: its flow, the attempt being read, and what was delivered."""

    def __init__(
        self,
        services: Services,
        request: Request,
        include_usage: bool = False,
        flow: Generator[Any, Outcome, dict] | None = None,
    ) -> None:
        self.services = services
        self.request = request
        self.flow = flow if flow is not None else fallback_flow(services, request)
        self.started = services.timer()
        self.include_usage = include_usage
        self.provider: str | None = None
        self.route = ""
        self.assembly = Assembly()
        self.pending: list[dict[str, Any]] = []  # read, not yet delivered
        self.final_usage: Any = None  # the usage on LiteLLM's last chunk
        self.first_content_ms: float | None = None
        self.response: dict[str, Any] | None = None  # the summary, once the flow answered
        self.done = False
        self.timer = StreamTimer(0.0, 0.0)  # the attempt's, from begin()

    def advance(self, send: Outcome | None) -> Any:
        """The flow's next operation, or (``done`` set) the response it returned."""
        try:
            return self.flow.send(send)  # type: ignore[arg-type]
        except StopIteration as finished:
            self.done = True
            self.response = finished.value
            return finished.value
        except BaseException:
            self.done = True
            raise

    # -- one attempt ---------------------------------------------------------------------

    def begin(self, call: Call) -> tuple[dict[str, Any], StreamTimer]:
        """Start reading ``call``: its LiteLLM arguments and its timer."""
        provider = self.services.config.providers[call.provider]
        first = provider.first_token_timeout or provider.timeout
        idle = provider.stream_idle_timeout or provider.timeout
        self.provider, self.route = call.provider, str(call.arguments["model"])
        self.assembly, self.pending, self.final_usage = Assembly(), [], None
        self.timer = StreamTimer(first, idle)  # http_clients reads it: it decides, not sockets
        return {**call.arguments, "timeout": max(first, idle)}, self.timer

    def take(self, raw: Any) -> bool:
        """Take LiteLLM's next chunk in; True once content has arrived (``pending`` may
        then be delivered). LiteLLM's usage-only chunk is kept, not delivered."""
        chunk, usage = read_chunk(raw, self.route)
        if usage is not None:
            self.final_usage = usage
        if not chunk["choices"]:
            return self.assembly.content
        had = self.assembly.content
        self.assembly.add(chunk)
        self.pending.append(chunk)
        if self.assembly.content and not had:
            self.timer.content_arrived()  # from now on, reads wait the idle timeout
            self.first_content_ms = (self.services.timer() - self.started) * 1000.0
        return self.assembly.content

    def drain(self) -> list[dict[str, Any]]:
        """The chunks read and not yet delivered."""
        out, self.pending = self.pending, []
        return out

    def step(self, raw: Any, stream: Any) -> Outcome | None:
        """After a read past the first content (``raw`` None: the end): the outcome to
        settle when the stream is over, else None (the chunk is in ``pending``)."""
        if raw is None:
            return self.ended(stream)
        self.take(raw)
        return None

    def ended(self, stream: Any) -> Outcome:
        """The outcome of a stream whose last chunk was read."""
        if self.assembly.content and not finish_received(stream):
            return self.cut(None, "it ended without a finish reason", stream=stream)
        usage = reported_usage(stream, self.final_usage)  # None: estimated by the flow
        return Outcome(response=self.assembly.response(usage))

    def cut(
        self,
        error: BaseException | None,
        why: str = "",
        *,
        stream: Any = None,
        abandoned: bool = False,
    ) -> Outcome:
        """The outcome of a stream that failed (``error``) or was left after its content."""
        provider = self.provider or ""
        cause = None
        if error is not None:
            secret = self.services.config.providers[provider].secret_key()
            cause = classify(error, provider, secrets=[secret])
            if cause is not error:
                cause.__cause__ = error
            why = why or str(cause)
        chunks = self.assembly.chunks
        interrupted = LLMStreamInterruptedError(
            f"{provider}: the stream was {'closed by its reader' if abandoned else 'interrupted'}"
            f" after {chunks} chunk{'s' * (chunks != 1)}" + (f": {why}" if why else ""),
            provider,
            partial_text=self.assembly.text,
            tool_calls=self.assembly.tool_calls,
            usage=reported_usage(stream, None) if stream is not None else None,
            metadata={"abandoned": True} if abandoned else None,
        )
        interrupted.__cause__ = cause
        return Outcome(error=interrupted)

    # -- the summary -------------------------------------------------------------------

    def finish(self, response: dict[str, Any]) -> dict[str, Any]:
        """The flow's answer as the stream's summary (time to first token added)."""
        first = self.first_content_ms
        response["time_to_first_token_ms"] = None if first is None else round(first, 3)
        return response

    def last_chunks(self) -> list[dict[str, Any]]:
        """What a caller gets after the end: the usage chunk, if it asked for one."""
        if not self.include_usage or self.response is None:
            return []
        head = self.assembly.head or {}
        keys = ("id", "object", "created", "model")
        return [{**{k: head.get(k) for k in keys}, "choices": [], "usage": self.response["usage"]}]
