"""Telemetry turned on where nothing can record it costs the call (almost) nothing.

The OpenTelemetry API's own no-op providers keep nothing: a client given only those
holds no observer at all. The global tracer and meter before an SDK is set keep
nothing either: a call made then is not watched; once the application sets one, the
next call is traced or measured.
"""

from __future__ import annotations

import subprocess
import sys

from opentelemetry import metrics, trace

from leadfactory.llm import LLMClient, LLMConfig
from leadfactory.llm.telemetry import Telemetry

from .conftest import SENTINEL_KEY, child_environment


def test_the_apis_no_op_providers_leave_the_client_unobserved():
    telemetry = Telemetry(
        traces=True,
        metrics=True,
        tracer_provider=trace.NoOpTracerProvider(),
        meter_provider=metrics.NoOpMeterProvider(),
    )
    assert LLMClient(LLMConfig(enable_caching=False), telemetry=telemetry)._observer is None
    # with one real thing to report to, the client is observed
    from prometheus_client import CollectorRegistry

    both = Telemetry(
        traces=True,
        prometheus=True,
        registry=CollectorRegistry(),
        tracer_provider=trace.NoOpTracerProvider(),
    )
    assert LLMClient(LLMConfig(enable_caching=False), telemetry=both)._observer is not None


def _run(script: str, telemetry: str, sim, tmp_path) -> str:
    env = child_environment(tmp_path) | sim.env() | {"OPENAI_API_KEY": SENTINEL_KEY}
    env["LLM_TELEMETRY"] = telemetry
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_the_global_tracer_traces_once_an_sdk_is_set(sim, tmp_path):
    """In a process of its own (the global provider can be set once): a call made before
    the application sets an SDK makes no span and succeeds; the next one is traced."""
    script = """
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from leadfactory.llm import LLMClient, LLMConfig

client = LLMClient(LLMConfig(enable_caching=False))
user = [{"role": "user", "content": "hi"}]
ask = lambda: client.chat_completion(user, model="openai", max_tokens=5)
ask()
exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)
ask()
print(sorted(span.name.split()[0] for span in exporter.get_finished_spans()))
"""
    assert _run(script, "traces", sim, tmp_path) == "['chat', 'leadfactory.llm.chat']"


def test_no_call_is_watched_until_an_sdk_is_set_then_each_is(sim, tmp_path):
    """Traces and metrics through the global providers: before the application sets an
    SDK a call is not watched at all (nothing would keep what it reports); after it sets
    a meter provider the next call is measured, after a tracer provider it is traced."""
    script = """
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
import leadfactory.llm.telemetry.watch as watch
from leadfactory.llm import LLMClient, LLMConfig

watched, real = [], watch.watch
watch.watch = lambda *args: watched.append(1) or real(*args)
client = LLMClient(LLMConfig(enable_caching=False))
user = [{"role": "user", "content": "hi"}]
ask = lambda: client.chat_completion(user, model="openai", max_tokens=5)
ask()
print("before an SDK:", len(watched))
reader = InMemoryMetricReader()
metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
ask()
attempts = [
    point.value
    for resource in reader.get_metrics_data().resource_metrics
    for scope in resource.scope_metrics
    for metric in scope.metrics if metric.name == "leadfactory.llm.attempts"
    for point in metric.data.data_points
]
print("with a meter provider:", len(watched), attempts)
exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)
ask()
print("and a tracer provider:", len(watched), len(exporter.get_finished_spans()))
"""
    assert _run(script, "otel", sim, tmp_path).splitlines() == [
        "before an SDK: 0",
        "with a meter provider: 1 [1]",
        "and a tracer provider: 2 2",
    ]


class _Told:
    """An observer of the application's own, without ``live``: always told."""

    def __init__(self) -> None:
        self.ended: list[str | None] = []

    def call_started(self, call) -> None: ...

    def attempt_started(self, call, attempt) -> None: ...

    def attempt_ended(self, call, attempt) -> None: ...

    def call_ended(self, call) -> None:
        self.ended.append(call.provider)


def test_an_observer_of_your_own_is_told_when_no_sdk_is_set(sim_env):
    mine = _Told()
    telemetry = Telemetry(traces=True, metrics=True, observers=(mine,))
    with LLMClient(LLMConfig(enable_caching=False), telemetry=telemetry) as client:
        client.chat_completion([{"role": "user", "content": "hi"}], model="openai")
    assert mine.ended == ["openai"]
