"""Telemetry's guards: off by default, turned on by the environment, and off it costs
nothing (a call imports neither OpenTelemetry nor prometheus-client and the flow is not
wrapped); on without the extra installed, the error says what to install; an observer
that raises never fails the call; no span or metric carries the key, whatever the fault,
even with content capture on.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys

import pytest

from leadfactory.llm import LLMClient, LLMConfig, LLMConfigurationError
from leadfactory.llm.simulator import Fault
from leadfactory.llm.telemetry import Telemetry

from .conftest import SENTINEL_KEY, child_environment
from .span_capture import TEXT, USER, every_value, split

# fixtures, imported so that pytest finds them in this module
from .span_capture import traced as traced


def test_off_by_default_and_turned_on_by_the_environment(sim_env, monkeypatch):
    assert LLMClient(LLMConfig())._observer is None
    monkeypatch.setenv("LLM_TELEMETRY", "traces")
    assert LLMClient(LLMConfig())._observer is not None
    monkeypatch.setenv("LLM_TELEMETRY", "tracing")
    with pytest.raises(LLMConfigurationError, match="LLM_TELEMETRY.*tracing"):
        LLMClient(LLMConfig())


def test_off_a_call_imports_and_builds_nothing_of_telemetry(sim, tmp_path):
    """Off (the default), neither OpenTelemetry nor prometheus-client is imported and
    the flow is not wrapped, though both are installed here."""
    script = """
import sys
from leadfactory.llm import LLMClient, LLMConfig
from leadfactory.llm.telemetry import watch

client = LLMClient(LLMConfig(enable_caching=False))
wrapped = []
real = watch.watch
watch.watch = lambda *a: wrapped.append(a) or real(*a)
client.chat_completion([{"role": "user", "content": "hi"}], model="openai", max_tokens=5)
loaded = sorted(m for m in sys.modules if m.startswith(("opentelemetry", "prometheus_client")))
print(loaded, wrapped)
"""
    env = child_environment(tmp_path) | sim.env() | {"OPENAI_API_KEY": SENTINEL_KEY}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[] []"


def test_turned_on_without_the_extra_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    with pytest.raises(LLMConfigurationError, match=r"leadfactory-llm\[prometheus\]"):
        LLMClient(LLMConfig(), telemetry=Telemetry(prometheus=True))
    monkeypatch.setitem(sys.modules, "opentelemetry", None)
    with pytest.raises(LLMConfigurationError, match=r"leadfactory-llm\[otel\]"):
        LLMClient(LLMConfig(), telemetry=Telemetry(traces=True))


def test_an_observer_that_raises_never_fails_the_call(sim_env, caplog):
    class Broken:
        def call_started(self, call):
            raise RuntimeError("bug")

        attempt_started = attempt_ended = call_ended = call_started

    seen = []

    class Counting:
        def call_started(self, call):
            seen.append("call")

        def attempt_started(self, call, attempt):
            seen.append(attempt.provider)

        def attempt_ended(self, call, attempt):
            seen.append(attempt.outcome)

        def call_ended(self, call):
            seen.append(call.provider)

    config = LLMConfig(enable_caching=False)
    client = LLMClient(config, telemetry=Telemetry(observers=(Broken(), Counting())))
    response = client.chat_completion(USER, model="openai", max_tokens=20)
    assert seen == ["call", "openai", "success", "openai"]
    assert response["provider"] == "openai"
    assert [r.message for r in caplog.records if "telemetry" in r.message] == [
        "telemetry: Broken.call_started raised RuntimeError; the call goes on "
        "(reported once per observer)"
    ]


SECRET_FAULTS = [f for f in Fault if f not in (Fault.OK, Fault.DELAY, Fault.TRICKLE, Fault.HANG)]


@pytest.mark.parametrize("protocol", ["openai", "anthropic", "ollama"])
def test_no_span_or_metric_carries_the_key_even_with_content_captured(
    sim_env, traced, protocol, monkeypatch
):
    """Every fault (ECHO_HEADERS quotes the request's headers back), content capture on:
    the key appears in no span name, attribute, status or event, nor in the metrics."""
    from prometheus_client import CollectorRegistry, generate_latest

    from leadfactory.llm import LLMError

    provider, exporter = traced
    monkeypatch.setenv("OLLAMA_API_KEY", SENTINEL_KEY)  # every provider holds the key
    registry = CollectorRegistry()
    backup = "anthropic" if protocol != "anthropic" else "openai"
    config = LLMConfig(fallback_strategy="quality_optimized", enable_caching=False)
    for name in list(config.providers):
        if name not in (protocol, backup):
            del config.providers[name]
    config.providers[protocol].priority = 10
    telemetry = Telemetry(
        traces=True, prometheus=True, capture_content=True, tracer_provider=provider,
        registry=registry,
    )  # fmt: skip
    client = LLMClient(config, telemetry=telemetry)
    for fault in SECRET_FAULTS:
        sim_env.set_fault(protocol, fault, times=1)
        with contextlib.suppress(LLMError):  # some faults fail the call: the spans stay
            client.chat_completion(USER, max_tokens=20)
    spans = exporter.get_finished_spans()
    assert len(split(spans)[0]) == len(SECRET_FAULTS)
    text = every_value(spans) + generate_latest(registry).decode()
    assert SENTINEL_KEY not in text and SENTINEL_KEY[3:-4] not in text
    assert TEXT in text  # content capture is on: the check above looked at real content
