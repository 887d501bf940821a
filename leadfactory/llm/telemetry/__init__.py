"""Observability: OpenTelemetry spans and metrics, and a Prometheus exposition.

Off by default. Turn it on for a client with ``LLMClient(telemetry=Telemetry(...))``,
or for every client of a process with ``LLM_TELEMETRY`` (``traces``, ``metrics``,
``prometheus``, comma-separated; ``otel`` means traces and metrics). Off, a call does
no telemetry work at all: the client holds no observer and never wraps its flow.

The pieces: :mod:`.facts` (what observers are told, the :class:`Observer` protocol),
:mod:`.watch` (reads them off the flow, for sync and async), :mod:`.spans`,
:mod:`.instruments` and :mod:`.sinks`. OpenTelemetry and prometheus-client are imported
only when turned on (extras ``[otel]`` and ``[prometheus]``). See docs/observability.md.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from ..exceptions import LLMConfigurationError
from .facts import AttemptFacts, CallFacts, Fanout, Observer

__all__ = ["AttemptFacts", "CallFacts", "Observer", "Telemetry", "observer_for"]

ENVIRONMENT = "LLM_TELEMETRY"
CONTENT_ENVIRONMENT = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
_WORDS = {"traces", "metrics", "prometheus", "otel", "off", "none", ""}


@dataclass(frozen=True)
class Telemetry:
    """What a client reports, and where.

    ``traces``: spans through the OpenTelemetry API (``tracer_provider``, else the
    global one). ``metrics``: instruments through the OpenTelemetry metrics API
    (``meter_provider``, else the global one). ``prometheus``: the same metrics in a
    prometheus-client ``registry`` (else its default one), for a scrape without a
    collector. ``capture_content``: put the messages and answers on the spans (off:
    never; None: as ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` says).
    ``observers``: more :class:`Observer`\\s of your own, told of every call.
    """

    traces: bool = False
    metrics: bool = False
    prometheus: bool = False
    capture_content: bool | None = None
    tracer_provider: Any = None
    meter_provider: Any = None
    registry: Any = None
    observers: tuple[Observer, ...] = ()

    @property
    def enabled(self) -> bool:
        return self.traces or self.metrics or self.prometheus or bool(self.observers)

    @classmethod
    def from_environment(cls) -> Telemetry:
        """``LLM_TELEMETRY`` read: e.g. ``otel``, ``prometheus`` or ``traces,prometheus``."""
        raw = os.environ.get(ENVIRONMENT, "")
        words = {word.strip().lower() for word in raw.split(",")}
        unknown = sorted(words - _WORDS)
        if unknown:
            raise LLMConfigurationError(
                f"{ENVIRONMENT}={raw!r}: unknown {', '.join(unknown)}; use a comma-separated "
                "list of traces, metrics, prometheus (otel = traces,metrics), or off",
                metadata={"field": ENVIRONMENT},
            )
        otel = "otel" in words
        return cls(
            traces=otel or "traces" in words,
            metrics=otel or "metrics" in words,
            prometheus="prometheus" in words,
        )


def _content_from_environment() -> bool:
    return os.environ.get(CONTENT_ENVIRONMENT, "").strip().lower() in ("1", "true", "yes", "on")


def observer_for(telemetry: Telemetry | None, client: Any = None) -> Fanout | None:
    """The observer ``telemetry`` asks for (None: off, and the client does nothing);
    ``client``'s provider and budget state feed the gauges."""
    if telemetry is None:
        telemetry = Telemetry.from_environment()
    if not telemetry.enabled:
        return None
    observers: list[Observer] = []
    try:
        if telemetry.traces:
            from .spans import SpanObserver

            capture = telemetry.capture_content
            capture = _content_from_environment() if capture is None else capture
            spans = SpanObserver(telemetry.tracer_provider, capture_content=capture)
            if spans.records:
                observers.append(spans)
        sinks = []
        if telemetry.metrics:
            from .sinks import meter_sink

            sinks.append(meter_sink(telemetry.meter_provider))
        if telemetry.prometheus:
            from .sinks import prometheus_sink

            sinks.append(prometheus_sink(telemetry.registry))
    except ImportError as missing:
        extra = "prometheus" if "prometheus" in str(missing.name) else "otel"
        raise LLMConfigurationError(
            f"Telemetry needs {missing.name}, which is not installed: "
            f"pip install 'leadfactory-llm[{extra}]' (or turn it off)",
            metadata={"field": "telemetry"},
        ) from None
    if sinks:
        from .instruments import MetricObserver

        for sink in sinks:
            if not sink.records:
                continue
            if client is not None:
                sink.gauges.watch(client)
            observers.append(MetricObserver(sink))
    observers.extend(telemetry.observers)
    if not observers:  # only the API's no-op providers: as if off
        return None
    return Fanout(observers)  # an observer's failure never fails the call
