"""Spans (issue 19): one per call, one per attempt, GenAI attributes, nested in the
caller's trace, sync and async; message text only when content capture is on.

Fallbacks, retries, skipped attempts (cooling down, too large for the model), every
provider failing, cache hits and cancelled async calls, each as the spans show it.
Real HTTP against the simulator; the OpenTelemetry SDK's in-memory exporter collects.
How telemetry is turned on and off, and what it never does, is in
tests/test_telemetry_guards.py.
"""

from __future__ import annotations

import asyncio

import pytest
from opentelemetry.trace import StatusCode

from leadfactory.llm import AllProvidersFailedError, LLMClient, LLMConfig
from leadfactory.llm.simulator import Fault
from leadfactory.llm.telemetry import Telemetry

from .conftest import SENTINEL_KEY
from .span_capture import TEXT, USER, every_value, split

# fixtures, imported so that pytest finds them in this module
from .span_capture import traced as traced


def make_client(provider, *, names=("openai", "anthropic"), capture=None, **settings) -> LLMClient:
    settings = {"enable_caching": False, **settings}
    config = LLMConfig(fallback_strategy="quality_optimized", **settings)
    for name in list(config.providers):
        if name not in names:
            del config.providers[name]
    for rank, name in enumerate(names):
        config.providers[name].priority = 10 - rank
        config.providers[name].max_retries = 0
    telemetry = Telemetry(traces=True, tracer_provider=provider, capture_content=capture)
    return LLMClient(config, telemetry=telemetry)


def test_a_fallback_from_a_500_is_one_call_span_and_two_attempt_spans(sim_env, traced):
    provider, exporter = traced
    sim_env.set_fault("openai", Fault.SERVER_ERROR)
    client = make_client(provider)
    tracer = provider.get_tracer("pipeline")
    with tracer.start_as_current_span("pipeline step") as step:
        response = client.chat_completion(USER, temperature=0.2, max_tokens=40)
    assert response["provider"] == "anthropic"

    spans = exporter.get_finished_spans()
    calls, attempts = split(spans)
    (call,) = calls
    assert len(attempts) == 2
    step_context = step.get_span_context()
    assert call.parent.span_id == step_context.span_id
    assert {s.context.trace_id for s in spans} == {step_context.trace_id}
    assert all(a.parent.span_id == call.context.span_id for a in attempts)

    failed, answered = sorted(attempts, key=lambda s: s.start_time)
    assert failed.attributes["gen_ai.provider.name"] == "openai"
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.attributes["error.type"] == "LLMProviderError"
    assert failed.attributes["leadfactory.llm.attempt.outcome"] == "error"
    assert answered.status.status_code is StatusCode.UNSET
    for span in (failed, answered):
        assert span.kind.name == "CLIENT"
        assert span.attributes["gen_ai.operation.name"] == "chat"
        assert span.attributes["gen_ai.request.temperature"] == 0.2
        assert span.attributes["gen_ai.request.max_tokens"] == 40
        assert span.attributes["server.address"] == "127.0.0.1"
        model = span.attributes["gen_ai.request.model"]
        assert span.name == f"chat {model}"
    assert answered.attributes["gen_ai.provider.name"] == "anthropic"
    assert (
        answered.attributes["gen_ai.request.model"]
        == client.config.providers["anthropic"].default_model
    )
    assert answered.attributes["gen_ai.response.model"] == response["model"]
    usage = response["usage"]
    assert answered.attributes["gen_ai.usage.input_tokens"] == usage["prompt_tokens"]
    assert answered.attributes["gen_ai.usage.output_tokens"] == usage["completion_tokens"]
    assert answered.attributes["leadfactory.llm.cost_usd"] == pytest.approx(response["cost"])
    assert answered.attributes["leadfactory.llm.attempt.outcome"] == "success"

    assert call.status.status_code is StatusCode.UNSET
    assert call.attributes["gen_ai.operation.name"] == "chat"
    assert call.attributes["gen_ai.provider.name"] == "anthropic"
    assert call.attributes["leadfactory.llm.strategy"] == "quality_optimized"
    assert call.attributes["leadfactory.llm.fallback_count"] == 1
    assert call.attributes["leadfactory.llm.attempt_count"] == 2
    assert call.attributes["leadfactory.llm.cached"] is False
    assert call.attributes["leadfactory.llm.cost_usd"] == pytest.approx(response["cost"])
    assert call.start_time <= failed.start_time <= answered.start_time <= call.end_time

    text = every_value(spans)
    assert SENTINEL_KEY not in text and SENTINEL_KEY[3:-4] not in text
    assert "capital" not in text and "Paris" not in text


def test_async_calls_nest_under_each_callers_span(sim_env, traced):
    provider, exporter = traced
    client = make_client(provider)
    tracer = provider.get_tracer("pipeline")

    async def step(number: int) -> int:
        with tracer.start_as_current_span(f"step {number}") as span:
            await asyncio.sleep(0)
            await client.achat_completion(
                [{"role": "user", "content": f"question {number}"}], max_tokens=20
            )
            return span.get_span_context().span_id

    async def main() -> list[int]:
        return await asyncio.gather(*(step(n) for n in range(4)))

    step_ids = asyncio.run(main())
    spans = exporter.get_finished_spans()
    calls, attempts = split(spans)
    assert sorted(c.parent.span_id for c in calls) == sorted(step_ids)
    by_call = {c.context.span_id for c in calls}
    assert len(attempts) == 4 and all(a.parent.span_id in by_call for a in attempts)
    for call in calls:
        step_span = next(s for s in spans if s.context.span_id == call.parent.span_id)
        assert call.context.trace_id == step_span.context.trace_id


def test_a_provider_cooling_down_is_a_skipped_attempt_span(sim_env, traced):
    provider, exporter = traced
    sim_env.set_fault("openai", Fault.SERVER_ERROR, times=1)
    client = make_client(provider, cooldown_failures=1, cooldown_seconds=60)
    client.chat_completion(USER, max_tokens=20)  # openai fails once: it cools down
    exporter.clear()
    response = client.chat_completion(USER, max_tokens=20)
    assert [a["outcome"] for a in response["attempts"]] == ["skipped", "success"]
    (call,), attempts = split(exporter.get_finished_spans())
    skipped, answered = sorted(attempts, key=lambda s: (s.start_time, s.end_time))
    assert skipped.attributes["gen_ai.provider.name"] == "openai"
    assert skipped.attributes["leadfactory.llm.attempt.outcome"] == "skipped"
    assert skipped.attributes["leadfactory.llm.skip.reason"] == "cooling_down"
    assert skipped.status.status_code is StatusCode.UNSET
    assert answered.attributes["gen_ai.provider.name"] == "anthropic"
    assert call.attributes["leadfactory.llm.fallback_count"] == 1


def test_every_provider_failing_sets_the_call_span_status(sim_env, traced):
    provider, exporter = traced
    sim_env.set_fault("openai", Fault.SERVER_ERROR)
    sim_env.set_fault("anthropic", Fault.UNAUTHORIZED)
    client = make_client(provider)
    with pytest.raises(AllProvidersFailedError):
        client.chat_completion(USER, max_tokens=20)
    (call,), attempts = split(exporter.get_finished_spans())
    assert call.status.status_code is StatusCode.ERROR
    assert call.attributes["error.type"] == "AllProvidersFailedError"
    assert {a.attributes["error.type"] for a in attempts} == {
        "LLMProviderError",
        "LLMAuthenticationError",
    }
    assert all(a.status.status_code is StatusCode.ERROR for a in attempts)
    text = every_value(exporter.get_finished_spans())
    assert SENTINEL_KEY not in text and SENTINEL_KEY[3:-4] not in text


def test_retries_are_numbered_and_counted(sim_env, traced):
    provider, exporter = traced
    sim_env.set_fault("openai", Fault.SERVER_ERROR, times=1)
    client = make_client(provider)
    client.config.providers["openai"].max_retries = 1
    client.chat_completion(USER, max_tokens=20)
    (call,), attempts = split(exporter.get_finished_spans())
    assert [a.attributes["leadfactory.llm.retry"] for a in attempts] == [0, 1]
    assert call.attributes["leadfactory.llm.retry_count"] == 1
    assert call.attributes["leadfactory.llm.fallback_count"] == 0


def test_content_is_captured_only_when_turned_on(sim_env, traced, monkeypatch):
    provider, exporter = traced
    make_client(provider).chat_completion(USER, max_tokens=20)
    assert "capital" not in every_value(exporter.get_finished_spans())
    exporter.clear()
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
    make_client(provider).chat_completion(USER, max_tokens=20)
    (call,), (attempt,) = split(exporter.get_finished_spans())
    assert TEXT in call.attributes["gen_ai.input.messages"]
    assert TEXT in attempt.attributes["gen_ai.input.messages"]
    assert "assistant" in attempt.attributes["gen_ai.output.messages"]
    assert SENTINEL_KEY not in every_value(exporter.get_finished_spans())


def test_a_cache_hit_is_a_cached_call_span(sim_env, traced):
    provider, exporter = traced
    client = make_client(provider, enable_caching=True)
    client.chat_completion(USER, max_tokens=20)
    exporter.clear()
    response = client.chat_completion(USER, max_tokens=20)
    assert response["cached"] is True
    (call,), (attempt,) = split(exporter.get_finished_spans())
    assert call.attributes["leadfactory.llm.cached"] is True
    assert attempt.attributes["leadfactory.llm.attempt.outcome"] == "cache_hit"
    assert attempt.attributes["gen_ai.provider.name"] == response["provider"]


def test_a_cancelled_async_call_ends_its_spans_with_the_charge(sim_env, traced):
    provider, exporter = traced
    sim_env.set_fault("openai", Fault.HANG)
    client = make_client(provider)

    async def main() -> None:
        task = asyncio.create_task(client.achat_completion(USER, max_tokens=20))
        while sim_env.request_count("openai") == 0:  # sent: it may be billed
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    (call,), (attempt,) = split(exporter.get_finished_spans())
    assert call.status.status_code is StatusCode.ERROR
    assert call.attributes["error.type"] == "Cancelled"
    assert attempt.status.status_code is StatusCode.ERROR
    assert attempt.attributes["error.type"] == "Cancelled"
    assert attempt.attributes["leadfactory.llm.cost_usd"] > 0  # what was reserved
    assert attempt.attributes["leadfactory.llm.usage_estimated"] is True


def test_a_provider_the_request_does_not_fit_is_a_skipped_attempt_span(
    sim_env, traced, monkeypatch
):
    from leadfactory.llm import LLMContextWindowError

    monkeypatch.setenv("OPENAI_MODEL", "gpt-4")  # not the default model since issue 14
    provider, exporter = traced
    big = [{"role": "user", "content": "Analyse this business. " + "lorem ipsum dolor " * 2200}]
    client = make_client(provider, names=("openai",))  # gpt-4 holds 8,192 tokens
    with pytest.raises(LLMContextWindowError):
        client.chat_completion(big, max_tokens=100)
    (call,), (skipped,) = split(exporter.get_finished_spans())
    assert call.status.status_code is StatusCode.ERROR
    assert call.attributes["error.type"] == "LLMContextWindowError"
    assert skipped.attributes["gen_ai.provider.name"] == "openai"
    assert skipped.attributes["leadfactory.llm.attempt.outcome"] == "skipped"
    assert skipped.attributes["leadfactory.llm.skip.reason"]
    assert "lorem" not in every_value(exporter.get_finished_spans())


def test_the_attempt_span_is_current_during_the_provider_call(sim_env, traced, monkeypatch):
    """So an HTTP or LiteLLM instrumentation's spans nest under the attempt, sync and
    async; after the call the caller's span is current again."""
    from opentelemetry import trace

    from leadfactory.llm import providers

    provider, exporter = traced
    current: list[int] = []
    complete, acomplete = providers.complete, providers.acomplete

    def spy(arguments):
        current.append(trace.get_current_span().get_span_context().span_id)
        return complete(arguments)

    async def aspy(arguments):
        current.append(trace.get_current_span().get_span_context().span_id)
        return await acomplete(arguments)

    monkeypatch.setattr(providers, "complete", spy)
    monkeypatch.setattr(providers, "acomplete", aspy)
    sim_env.set_fault("openai", Fault.SERVER_ERROR, times=1)
    client = make_client(provider)
    tracer = provider.get_tracer("pipeline")
    with tracer.start_as_current_span("step") as step:
        client.chat_completion(USER, max_tokens=20)
        assert trace.get_current_span() is step

        async def twice() -> None:
            await client.achat_completion(USER, max_tokens=20)
            assert trace.get_current_span() is step

        asyncio.run(twice())
    attempts = sorted(split(exporter.get_finished_spans())[1], key=lambda s: s.start_time)
    assert current == [a.context.span_id for a in attempts]
    assert len(current) == 3  # openai's 500 and anthropic, then openai


def test_the_call_span_costs_every_attempt_charged(sim_env, traced):
    """A timed-out attempt is charged (the provider may bill it); the call span's
    cost_usd is the whole call's, the answered attempt's plus that one."""
    provider, exporter = traced
    sim_env.set_fault("openai", Fault.HANG)
    client = make_client(provider)
    client.config.providers["openai"].timeout = 0.3
    response = client.chat_completion(USER, max_tokens=20)
    assert response["provider"] == "anthropic"
    (call,), attempts = split(exporter.get_finished_spans())
    costs = [a.attributes["leadfactory.llm.cost_usd"] for a in attempts]
    assert len(costs) == 2 and all(cost > 0 for cost in costs)
    assert call.attributes["leadfactory.llm.cost_usd"] == pytest.approx(sum(costs))
