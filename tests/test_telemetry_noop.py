"""Telemetry turned on where nothing can record it costs the call (almost) nothing.

The OpenTelemetry API's own no-op providers keep nothing: a client given only those
holds no observer at all. The global tracer before an SDK is set makes no spans; once
the application sets one, the next call is traced.
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
    env = child_environment(tmp_path) | sim.env() | {"OPENAI_API_KEY": SENTINEL_KEY}
    env["LLM_TELEMETRY"] = "traces"
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['chat', 'leadfactory.llm.chat']"
