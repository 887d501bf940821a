"""Shared by the telemetry tests: an in-memory span exporter (the ``traced`` fixture),
helpers that sort its spans into call and attempt spans and read every value they carry.
"""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

TEXT = "What is the capital of France?"


USER = [{"role": "user", "content": TEXT}]


CALL_SPAN = "leadfactory.llm.chat"


@pytest.fixture
def traced():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


def split(spans):
    calls = [s for s in spans if s.name.startswith(CALL_SPAN)]
    attempts = [s for s in spans if s.name.startswith("chat")]
    return calls, attempts


def every_value(spans) -> str:
    parts = []
    for span in spans:
        parts += [span.name, str(span.status.description)]
        parts += [f"{k}={v}" for k, v in span.attributes.items()]
        parts += [str(e.attributes) for e in span.events]
    return "\n".join(parts)
