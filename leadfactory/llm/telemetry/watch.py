"""The seam between the client's drivers and telemetry, shared by sync and async.

:func:`watch` wraps the fallback flow: it passes every operation and outcome through
unchanged and reads, on the way, the facts the flow already states (``Reserve``: the
model and a budget refusal; ``Call``: an attempt starts; the ``Outcome``: the answer's
model and id, or, for a reservation read as the request left (a ``Deferred``), that it
was refused and the attempt is a skip; ``Settle``: the attempt's charge, tokens,
latency and error class). When
the call ends it adds the skipped providers from the response's ``attempts[]`` (or the
error's), so a skip needs no hook of its own, and tells the :class:`~.facts.Observer`.
:func:`cache_hit` does the same for an answer served from the cache. When telemetry is
off the client never calls either: a call costs nothing extra.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Generator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..exceptions import LLMLedgerUnavailableError
from ..flow import Call, Deferred, Outcome, Request, Services, fallback_flow
from ..ledger import CacheHit, Reserve, Settle
from .facts import AttemptFacts, CallFacts, Fanout, Observer

if TYPE_CHECKING:
    from ..flow import Operation

__all__ = ["cache_hit", "watch", "watched"]

Flow = Generator["Operation", Outcome, dict]


def watched(observer: Fanout | None, services: Services, request: Request) -> Flow:
    """The fallback flow of ``request``: as it is when ``observer`` is None (telemetry
    off) or would keep nothing of it now (see :meth:`Fanout.live`), else wrapped by
    :func:`watch`."""
    flow = fallback_flow(services, request)
    if observer is None or not observer.live():
        return flow
    return watch(flow, services, request, observer)


def watch(flow: Flow, services: Services, request: Request, observer: Observer) -> Flow:
    """``flow``, unchanged, with each call and attempt told to ``observer``."""
    config = services.config
    call = CallFacts(
        request=request, strategy=str(config.fallback_strategy), started_ns=time.time_ns()
    )
    started = time.perf_counter()
    tries: dict[str, int] = {}
    open_: list[AttemptFacts] = []  # the attempt between its Call and its Settle
    refused: list[AttemptFacts] = []  # attempts stopped as they were sent: skips
    model: str | None = None
    deferred: Deferred | None = None  # the reservation of the next Call, read at its send

    def settled(write: Settle | None) -> None:
        if open_:
            attempt = open_.pop()
            _settle(attempt, write)
            observer.attempt_ended(call, attempt)

    closing = services.settle_on_close
    assert closing is not None

    def settle_on_close(write: Any) -> None:  # a cancelled attempt's charge
        if isinstance(write, Settle):
            settled(write)
        closing(write)

    services.settle_on_close = settle_on_close
    observer.call_started(call)
    send: Outcome | None = None
    try:
        while True:
            try:
                operation = flow.send(send)  # type: ignore[arg-type]
            except StopIteration as done:
                _answered(call, done.value)
                _add_skips(call, done.value.get("attempts"), config, observer, refused)
                return done.value
            if isinstance(operation, Reserve):
                model = operation.model
            elif isinstance(operation, Call):
                attempt = _begin(call, operation, model, tries, config)
                open_.append(attempt)
                observer.attempt_started(call, attempt)
            elif isinstance(operation, Settle):
                settled(operation)
            send = yield operation
            if isinstance(operation, Reserve) and send is not None:
                if send.error is not None:
                    call.budget_refusals.append(operation.provider)
                deferred = send.value if isinstance(send.value, Deferred) else None
            elif isinstance(operation, Call) and open_ and send is not None:
                stopped = deferred.outcome if deferred is not None else None
                if stopped is not None and stopped.error is not None:  # never sent: a skip
                    attempt = open_.pop()
                    _stopped_at_send(call, attempt, stopped.error, tries)
                    refused.append(attempt)
                    observer.attempt_ended(call, attempt)
                else:
                    _read_answer(open_[-1], send)
    except GeneratorExit:
        call.error_class = "Cancelled"
        raise
    except BaseException as error:
        call.error_class, call.error_detail = type(error).__name__, str(error)
        _add_skips(call, getattr(error, "metadata", {}).get("attempts"), config, observer, refused)
        raise
    finally:
        flow.close()  # a cancelled attempt settles here, through settle_on_close
        if open_:  # closed before any settlement reached us
            settled(None)
        call.ended_ns = time.time_ns()
        call.duration_s = time.perf_counter() - started
        observer.call_ended(call)


def cache_hit(observer: Fanout, record: CacheHit, config: Any) -> None:
    """Tell ``observer`` of a call answered from the cache (``record``: its ledger row)."""
    if not observer.live():
        return
    ended = time.time_ns()
    started = ended - int(record.latency_ms * 1e6)
    request = Request(record.request_id, [], {}, 0, caller=record.caller)
    strategy = str(config.fallback_strategy)
    call = CallFacts(request=request, strategy=strategy, started_ns=started, ended_ns=ended)
    call.duration_s = record.latency_ms / 1000.0
    call.cached, call.provider, call.response_model = True, record.provider, record.model
    attempt = AttemptFacts(
        provider=record.provider,
        model=record.model,
        outcome="cache_hit",
        started_ns=started,
        ended_ns=ended,
        latency_s=call.duration_s,
        response_model=record.model,
    )
    call.attempts.append(attempt)
    observer.call_started(call)
    observer.attempt_started(call, attempt)
    observer.attempt_ended(call, attempt)
    observer.call_ended(call)


# -- reading the operations --------------------------------------------------------


def _begin(
    call: CallFacts, operation: Call, model: str | None, tries: dict[str, int], config: Any
) -> AttemptFacts:
    name = operation.provider
    retry = tries.get(name, 0)
    tries[name] = retry + 1
    provider = config.providers.get(name)
    if name not in call.server:
        call.server[name] = _server(getattr(provider, "base_url", None))
    attempt = AttemptFacts(provider=name, model=model, retry=retry, started_ns=time.time_ns())
    call.attempts.append(attempt)
    return attempt


def _read_answer(attempt: AttemptFacts, outcome: Outcome) -> None:
    attempt.ended_ns = time.time_ns()
    response = outcome.response
    if outcome.error is None and isinstance(response, dict):
        attempt.response_model = _text(response.get("model"))
        attempt.response_id = _text(response.get("id"))
        choices = response.get("choices")
        if isinstance(choices, list):
            attempt.finish_reasons = tuple(
                str(c.get("finish_reason")) for c in choices if isinstance(c, dict)
            )
            attempt.completion = [c.get("message") for c in choices if isinstance(c, dict)]


def _stopped_at_send(
    call: CallFacts, attempt: AttemptFacts, error: BaseException, tries: dict[str, int]
) -> None:
    """``attempt`` turned into the skip it is: its reservation, read as the request was
    about to leave, was refused (or the ledger was away), so nothing was sent."""
    tries[attempt.provider] -= 1  # not a try
    call.attempts.remove(attempt)  # (put back among the skips, in order, at the end)
    attempt.ended_ns = time.time_ns()
    attempt.outcome, attempt.error_class = "skipped", type(error).__name__
    down = isinstance(error, LLMLedgerUnavailableError)
    attempt.reason = "ledger_unavailable" if down else "over_budget"
    call.budget_refusals.append(attempt.provider)


def _settle(attempt: AttemptFacts, write: Settle | None) -> None:
    """The attempt's charge (``write`` None: it ended with no settlement seen here)."""
    attempt.ended_ns = attempt.ended_ns or time.time_ns()
    if write is None:
        attempt.outcome, attempt.error_class = "error", "Cancelled"
        return
    attempt.outcome = write.outcome
    attempt.error_class = write.error_class
    attempt.cost_usd = write.cost_usd
    attempt.input_tokens, attempt.output_tokens = write.prompt_tokens, write.completion_tokens
    attempt.latency_s = write.latency_ms / 1000.0
    attempt.estimated = write.estimated


def _answered(call: CallFacts, response: dict[str, Any]) -> None:
    call.provider = _text(response.get("provider"))
    call.response_model = _text(response.get("model"))
    call.cost_usd = float(response.get("cost") or 0.0)
    call.cached = bool(response.get("cached"))


def _add_skips(
    call: CallFacts, entries: Any, config: Any, observer: Observer, refused: list[AttemptFacts]
) -> None:
    """Put the skipped providers of ``entries`` (``attempts[]``) among the attempts made,
    in their order, and tell ``observer`` of each (``refused``: skips it was told of,
    attempts stopped as they were sent)."""
    if not isinstance(entries, list):
        return
    made = iter(list(call.attempts))
    ordered: list[AttemptFacts] = []
    at = call.started_ns
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        if entry.get("outcome") != "skipped":
            attempt = next(made, None)
            if attempt is not None:
                attempt.detail = _text(entry.get("detail"))
                ordered.append(attempt)
                at = attempt.ended_ns or at
            continue
        name = str(entry.get("provider"))
        if refused and refused[0].provider == name:  # told already, as it was stopped
            skip = refused.pop(0)
            skip.detail = _text(entry.get("detail"))
            ordered.append(skip)
            at = skip.ended_ns or at
            continue
        provider = config.providers.get(name)
        skip = AttemptFacts(
            provider=name,
            model=call.request.model or getattr(provider, "default_model", None),
            outcome="skipped",
            reason=_text(entry.get("reason")),
            error_class=_text(entry.get("error")),
            detail=_text(entry.get("detail")),
            started_ns=at,
            ended_ns=at,
        )
        ordered.append(skip)
        observer.attempt_started(call, skip)
        observer.attempt_ended(call, skip)
    call.attempts = ordered + list(made)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


@functools.lru_cache(maxsize=64)
def _server(base_url: str | None) -> tuple[str | None, int | None]:
    """``server.address`` and ``server.port`` of a base URL (never its user or password)."""
    if not base_url:
        return None, None
    try:
        parts = urlsplit(base_url)
        return parts.hostname, parts.port
    except ValueError:
        return None, None
