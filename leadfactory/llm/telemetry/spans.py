"""Spans through the OpenTelemetry API, after the GenAI semantic conventions.

One ``leadfactory.llm.chat`` span per client call, a child of the caller's current span
(sync and async alike: it is opened in the caller's context), and one ``chat {model}``
span (kind CLIENT) per provider attempt under it, skips and cache hits included.
Attributes are the conventions' ``gen_ai.*`` ones plus this library's
``leadfactory.llm.*``; a failed attempt or call has status ERROR and ``error.type``.
While a provider is called its attempt span is the current span, so spans that an
HTTP or LiteLLM instrumentation makes nest under it.
No message text unless ``capture_content``; never a key (arguments are not read).
"""

from __future__ import annotations

import json
from typing import Any

from .facts import AttemptFacts, CallFacts

__all__ = ["SpanObserver", "request_attributes"]

SCOPE = "leadfactory.llm"

# Request parameters and their convention names (gen_ai.request.*).
_PARAMETERS = {
    "temperature": "gen_ai.request.temperature",
    "max_tokens": "gen_ai.request.max_tokens",
    "top_p": "gen_ai.request.top_p",
    "top_k": "gen_ai.request.top_k",
    "frequency_penalty": "gen_ai.request.frequency_penalty",
    "presence_penalty": "gen_ai.request.presence_penalty",
    "stop": "gen_ai.request.stop_sequences",
    "seed": "gen_ai.request.seed",
    "n": "gen_ai.request.choice.count",
}


def request_attributes(params: dict[str, Any]) -> dict[str, Any]:
    """The ``gen_ai.request.*`` attributes of a request's generation parameters."""
    attributes: dict[str, Any] = {}
    for key, value in params.items():
        name = _PARAMETERS.get(key)
        if name is None:
            continue
        if isinstance(value, str) and key == "stop":
            value = [value]
        if isinstance(value, bool | int | float | str) or (
            isinstance(value, list) and all(isinstance(v, str) for v in value)
        ):
            attributes[name] = value
    return attributes


class SpanObserver:
    """Opens and ends the spans of each call (see the module docstring)."""

    def __init__(self, tracer_provider: Any = None, *, capture_content: bool = False) -> None:
        from opentelemetry import context, trace

        self._trace, self._context = trace, context
        self._tracer = trace.get_tracer(SCOPE, version(), tracer_provider=tracer_provider)
        self._client, self._internal = trace.SpanKind.CLIENT, trace.SpanKind.INTERNAL
        self._error = trace.StatusCode.ERROR
        self.capture_content = capture_content
        # The API's own no-op tracer records nothing, ever: the client need not call it.
        self.records = not isinstance(self._tracer, trace.NoOpTracer)
        # The global tracer before an SDK is set: a call made then is not traced.
        self._global = isinstance(self._tracer, trace.ProxyTracer)

    def _no_sdk_yet(self) -> bool:
        proxy = self._trace.ProxyTracerProvider
        return self._global and isinstance(self._trace.get_tracer_provider(), proxy)

    def live(self) -> bool:
        """False while the global tracer has no SDK behind it: a call would get no span."""
        return not self._no_sdk_yet()

    def call_started(self, call: CallFacts) -> None:
        if self._no_sdk_yet():  # the span would be the API's no-op one
            return
        request = call.request
        attributes = {
            "gen_ai.operation.name": "chat",
            "leadfactory.llm.strategy": call.strategy,
            "leadfactory.llm.request_id": request.request_id,
        }
        call.request_attributes = request_attributes(request.params)
        attributes.update(call.request_attributes)
        if request.caller is not None:
            attributes["leadfactory.llm.caller"] = request.caller
        if request.pinned_provider is not None:
            attributes["leadfactory.llm.pinned_provider"] = request.pinned_provider
        if self.capture_content:
            attributes["gen_ai.input.messages"] = _json(request.messages)
        call.span = self._tracer.start_span(
            "leadfactory.llm.chat",
            kind=self._internal,
            attributes=attributes,
            start_time=call.started_ns,
        )

    def attempt_started(self, call: CallFacts, attempt: AttemptFacts) -> None:
        if call.span is None:  # the call is not traced
            return
        address, port = call.server.get(attempt.provider, (None, None))
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": attempt.provider,
            "leadfactory.llm.retry": attempt.retry,
            **call.request_attributes,
        }
        if attempt.model:
            attributes["gen_ai.request.model"] = attempt.model
        if address:
            attributes["server.address"] = address
            if port:
                attributes["server.port"] = port
        if self.capture_content and attempt.outcome not in ("skipped", "cache_hit"):
            attributes["gen_ai.input.messages"] = _json(call.request.messages)
        attempt.span = span = self._tracer.start_span(
            f"chat {attempt.model}" if attempt.model else "chat",
            context=self._trace.set_span_in_context(call.span),
            kind=self._client,
            attributes=attributes,
            start_time=attempt.started_ns,
        )
        if attempt.outcome not in ("skipped", "cache_hit"):  # a call follows: make it current
            attempt.token = self._context.attach(self._trace.set_span_in_context(span))

    def attempt_ended(self, call: CallFacts, attempt: AttemptFacts) -> None:
        if attempt.token is not None:  # first: the caller's context is back whatever happens
            token, attempt.token = attempt.token, None
            self._context.detach(token)
        span = attempt.span
        if span is None:
            return
        if not span.is_recording():  # no SDK (or not sampled): nothing would keep them
            span.end()
            return
        attributes: dict[str, Any] = {"leadfactory.llm.attempt.outcome": attempt.outcome}
        if attempt.outcome == "skipped":
            attributes["leadfactory.llm.skip.reason"] = attempt.reason or "unknown"
        else:
            attributes.update(_usage(attempt))
        if attempt.outcome == "cache_hit":
            attributes["leadfactory.llm.cached"] = True
        if attempt.error_class:
            attributes["error.type"] = attempt.error_class
        if self.capture_content and attempt.completion is not None:
            attributes["gen_ai.output.messages"] = _json(attempt.completion)
        span.set_attributes(attributes)
        if attempt.outcome == "error":
            span.set_status(self._error, self._description(attempt.error_class, attempt.detail))
        span.end(end_time=max(attempt.ended_ns, attempt.started_ns))

    def call_ended(self, call: CallFacts) -> None:
        span = call.span
        if span is None:
            return
        if not span.is_recording():
            span.end()
            return
        model = call.model
        if model:
            span.update_name(f"leadfactory.llm.chat {model}")
        answer = next(
            (a for a in reversed(call.attempts) if a.outcome in ("success", "cache_hit")), None
        )
        attributes: dict[str, Any] = {}
        if answer is not None:  # its usage; then the call's own figures, cost included
            attributes["gen_ai.provider.name"] = answer.provider
            attributes.update(_usage(answer))
        attributes["leadfactory.llm.cached"] = call.cached
        attributes["leadfactory.llm.cost_usd"] = sum(a.cost_usd for a in call.attempts)
        attributes["leadfactory.llm.retry_count"] = call.retries
        attributes["leadfactory.llm.attempt_count"] = len(call.attempts)
        attributes["leadfactory.llm.fallback_count"] = len(call.fallbacks())
        if model:
            attributes["gen_ai.request.model"] = model
        if call.error_class:
            attributes["error.type"] = call.error_class
            span.set_status(self._error, self._description(call.error_class, call.error_detail))
        span.set_attributes(attributes)
        span.end(end_time=call.ended_ns or None)

    def _description(self, error_class: str | None, detail: str | None) -> str:
        """The error class; with content capture, its message too (it may quote content)."""
        if self.capture_content and detail:
            return f"{error_class}: {detail}"
        return error_class or "error"


def _usage(attempt: AttemptFacts) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "gen_ai.usage.input_tokens": attempt.input_tokens,
        "gen_ai.usage.output_tokens": attempt.output_tokens,
        "leadfactory.llm.cost_usd": attempt.cost_usd,
    }
    if attempt.estimated:
        attributes["leadfactory.llm.usage_estimated"] = True
    if attempt.response_model:
        attributes["gen_ai.response.model"] = attempt.response_model
    if attempt.response_id:
        attributes["gen_ai.response.id"] = attempt.response_id
    if attempt.finish_reasons:
        attributes["gen_ai.response.finish_reasons"] = list(attempt.finish_reasons)
    return attributes


def _json(value: Any) -> str:
    return json.dumps(value, default=str, ensure_ascii=False)


def version() -> str | None:
    """This library's installed version (the instrumentation scope's)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("leadfactory-llm")
    except PackageNotFoundError:  # pragma: no cover - run from a source tree
        return None
