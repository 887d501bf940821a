"""Where the instruments of :mod:`.instruments` live: the OpenTelemetry metrics API
(:class:`MeterSink`) or a prometheus-client registry (:class:`PrometheusSink`).

One sink per meter provider or registry, shared by every client that uses it
(:func:`meter_sink`, :func:`prometheus_sink`): a registry refuses a name registered
twice. The gauges are read when the metrics are collected (a scrape), from the clients
each sink :meth:`~Gauges.watch`\\es: provider availability from their health and
rate-limit state, budget spend from their ledger.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from typing import Any

from .instruments import (
    BUDGET_LIMIT,
    BUDGET_SPENT,
    COOLDOWN,
    INSTRUMENTS,
    PAUSE,
    Instrument,
)
from .spans import SCOPE, version

__all__ = ["Gauges", "MeterSink", "PrometheusSink", "meter_sink", "prometheus_sink"]

Reading = tuple[float, tuple[str, ...]]
_KNOWN_LABEL_SETS = 4096  # attribute dicts a MeterSink keeps for reuse


class Gauges:
    """The clients whose state the gauges report (held weakly: a client gone is gone)."""

    def __init__(self) -> None:
        self._clients: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()

    def watch(self, client: Any, *, providers: bool = True) -> None:
        """Report ``client``'s budget, and (``providers``) its providers' availability."""
        self._clients[client] = providers

    def read(self, instrument: Instrument) -> list[Reading]:
        """The current values of gauge ``instrument``, one per label set (the largest
        when several clients report the same one)."""
        values: dict[tuple[str, ...], float] = {}
        for client, providers in list(self._clients.items()):
            if not providers and instrument not in (BUDGET_SPENT, BUDGET_LIMIT):
                continue
            try:
                for value, labels in _client_readings(client, instrument):
                    values[labels] = max(value, values.get(labels, value))
            except Exception:  # a closed client, an unreachable ledger: no reading
                continue
        return [(value, labels) for labels, value in values.items()]


def _client_readings(client: Any, instrument: Instrument) -> Iterator[Reading]:
    config = client.config
    if instrument in (BUDGET_SPENT, BUDGET_LIMIT):
        costs = config.cost_config
        limits = {"day": costs.daily_cost_limit, "month": costs.monthly_cost_limit}
        for period, limit in limits.items():
            if instrument is BUDGET_SPENT:
                yield client.ledger.spend(period=period), (period,)
            elif limit is not None:
                yield float(limit), (period,)
        return
    for name, provider in config.providers.items():
        cooling = float(client._health.status(name).get("seconds_left") or 0.0)
        paused = float(client._limiter.status(name).get("paused_for") or 0.0)
        if instrument is COOLDOWN:
            yield cooling, (name,)
        elif instrument is PAUSE:
            yield paused, (name,)
        else:
            usable = provider.enabled and provider.missing_requirement() is None
            yield float(usable and not cooling and not paused), (name,)


class MeterSink:
    """The instruments, made with an OpenTelemetry meter (the global provider's, or
    ``meter_provider``'s)."""

    def __init__(self, meter_provider: Any = None) -> None:
        from opentelemetry import metrics

        meter = metrics.get_meter(SCOPE, version(), meter_provider=meter_provider)
        self.records = not isinstance(meter, metrics.NoOpMeter)  # the API's no-op: nothing kept
        self._get_provider = metrics.get_meter_provider
        self._proxy = _proxy_meter_provider() if meter_provider is None else None
        self.gauges = Gauges()
        self._known: dict[tuple[str, tuple[str, ...]], dict[str, str]] = {}
        self._observation = metrics.Observation
        self._made: dict[str, Any] = {}
        for spec in INSTRUMENTS:
            common = {"name": spec.name, "unit": spec.unit, "description": spec.description}
            if spec.kind == "counter":
                self._made[spec.name] = meter.create_counter(**common)
            elif spec.kind == "histogram":
                self._made[spec.name] = meter.create_histogram(
                    **common, explicit_bucket_boundaries_advisory=list(spec.buckets)
                )
            else:
                meter.create_observable_gauge(**common, callbacks=[self._observer(spec)])

    def live(self) -> bool:
        """False while the global meter provider is the API's stand-in (no SDK set yet):
        its instruments drop every measurement, so a call need not make any."""
        return self._proxy is None or not isinstance(self._get_provider(), self._proxy)

    def add(self, instrument: Instrument, value: float, labels: tuple[str, ...]) -> None:
        self._made[instrument.name].add(value, self._attributes(instrument, labels))

    def record(self, instrument: Instrument, value: float, labels: tuple[str, ...]) -> None:
        self._made[instrument.name].record(value, self._attributes(instrument, labels))

    def _attributes(self, instrument: Instrument, labels: tuple[str, ...]) -> dict[str, str]:
        """:func:`_attributes`, kept per label set (few: providers x models x outcomes);
        the instruments only read them."""
        key = (instrument.name, labels)
        attributes = self._known.get(key)
        if attributes is None:
            if len(self._known) >= _KNOWN_LABEL_SETS:
                self._known.clear()
            attributes = self._known[key] = _attributes(instrument, labels)
        return attributes

    def _observer(self, spec: Instrument) -> Any:
        def observe(_options: Any) -> list[Any]:
            return [
                self._observation(value, _attributes(spec, labels))
                for value, labels in self.gauges.read(spec)
            ]

        return observe


def _proxy_meter_provider() -> type | None:
    """The class of the metrics API's global stand-in provider (private in the API, so
    looked up here only; None if it moved: then measurements are always made)."""
    try:
        from opentelemetry.metrics._internal import _ProxyMeterProvider
    except ImportError:
        return None
    return _ProxyMeterProvider if isinstance(_ProxyMeterProvider, type) else None


def _attributes(instrument: Instrument, labels: tuple[str, ...]) -> dict[str, str]:
    """Label values as attributes; an empty one is left out (OpenTelemetry has absence)."""
    return {name: value for name, value in zip(instrument.labels, labels, strict=True) if value}


class PrometheusSink:
    """The instruments in a prometheus-client ``registry`` (the default one if None)."""

    def __init__(self, registry: Any = None) -> None:
        import prometheus_client as prom

        registry = prom.REGISTRY if registry is None else registry
        self.records = True
        self.gauges = Gauges()
        self._made: dict[str, Any] = {}
        gauges = []
        for spec in INSTRUMENTS:
            common = {
                "name": spec.prometheus_name,
                "documentation": spec.description,
                "labelnames": spec.prometheus_labels,
                "registry": registry,
            }
            if spec.kind == "counter":
                self._made[spec.name] = prom.Counter(**common)
            elif spec.kind == "histogram":
                self._made[spec.name] = prom.Histogram(**common, buckets=spec.buckets)
            else:
                gauges.append(spec)
        registry.register(_GaugeCollector(self.gauges, gauges))

    def add(self, instrument: Instrument, value: float, labels: tuple[str, ...]) -> None:
        self._made[instrument.name].labels(*labels).inc(value)

    def record(self, instrument: Instrument, value: float, labels: tuple[str, ...]) -> None:
        self._made[instrument.name].labels(*labels).observe(value)


class _GaugeCollector:
    """The gauges, read at each collection (a prometheus-client custom collector)."""

    def __init__(self, gauges: Gauges, specs: list[Instrument]) -> None:
        self._gauges, self._specs = gauges, specs

    def describe(self) -> list[Any]:
        return list(self._families(read=False))

    def collect(self) -> Iterator[Any]:
        yield from self._families(read=True)

    def _families(self, *, read: bool) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        for spec in self._specs:
            family = GaugeMetricFamily(
                spec.prometheus_name, spec.description, labels=spec.prometheus_labels
            )
            for value, labels in self._gauges.read(spec) if read else ():
                family.add_metric(list(labels), value)
            yield family


_lock = threading.Lock()
_meter_sinks: dict[int, tuple[Any, MeterSink]] = {}
_prometheus_sinks: weakref.WeakKeyDictionary[Any, PrometheusSink] = weakref.WeakKeyDictionary()


def meter_sink(meter_provider: Any = None) -> MeterSink:
    """The one :class:`MeterSink` of ``meter_provider`` (None: the global one)."""
    with _lock:
        held = _meter_sinks.get(id(meter_provider))
        if held is None or held[0] is not meter_provider:
            held = (meter_provider, MeterSink(meter_provider))
            _meter_sinks[id(meter_provider)] = held
        return held[1]


def prometheus_sink(registry: Any = None) -> PrometheusSink:
    """The one :class:`PrometheusSink` of ``registry`` (None: prometheus-client's default)."""
    import prometheus_client as prom

    registry = prom.REGISTRY if registry is None else registry
    with _lock:
        sink = _prometheus_sinks.get(registry)
        if sink is None:
            sink = _prometheus_sinks[registry] = PrometheusSink(registry)
        return sink
