"""Streaming end to end, blocking client: the fault matrix per wire protocol, usage,
leaving early, the summary (shared checks in tests/stream_cases.py)."""

from __future__ import annotations

import time

import pytest

from leadfactory.llm import LLMClient, LLMConfig, LLMStreamInterruptedError, LLMValidationError
from leadfactory.llm.simulator.streaming import StreamFault
from leadfactory.llm.simulator.usage import Usage

from .conftest import list_cost
from .stream_cases import (
    AFTER,
    BEFORE,
    FAILING_REPLY,
    PROVIDER,
    ROUTES,
    USER,
    check_fell_back,
    check_interrupted,
    make_client,
    pieces,
    replies_restored,  # noqa: F401  (autouse fixture)
    set_replies,
    timeouts,
)


def read(stream) -> tuple[list[dict], str]:
    chunks = list(stream)
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    return chunks, text


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("fault", list(BEFORE))
def test_fault_before_first_content_falls_back(sim_env, route, fault):
    set_replies(sim_env, route)
    BEFORE[fault](sim_env, PROVIDER[route])
    client = make_client(route, **timeouts(fault, after=False))
    with client.chat_completion(USER, max_tokens=20, stream=True) as stream:
        _, text = read(stream)
    check_fell_back(sim_env, client, route, text, stream.response)


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("fault", list(AFTER))
def test_fault_after_first_content_raises_with_the_text_so_far(sim_env, route, fault):
    set_replies(sim_env, route)
    sim_env.set_stream_fault(PROVIDER[route], AFTER[fault], after=2)
    client = make_client(route, **timeouts(fault, after=True))
    received: list[str] = []
    stream = client.chat_completion(USER, max_tokens=20, stream=True)
    with pytest.raises(LLMStreamInterruptedError) as caught:
        for chunk in stream:
            if chunk["choices"]:
                received.append(chunk["choices"][0]["delta"].get("content") or "")
    check_interrupted(sim_env, client, route, "".join(received), caught.value)


@pytest.mark.parametrize("route", ROUTES)
def test_completed_stream_is_charged_its_reported_usage(sim_env, route):
    set_replies(sim_env, route)
    client = make_client(route)
    stream = client.chat_completion(USER, max_tokens=20, stream=True)
    chunks, text = read(stream)
    provider = PROVIDER[route]
    assert text == FAILING_REPLY and stream.text == text
    assert chunks[0]["object"] == "chat.completion.chunk"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    summary = stream.response
    assert summary["choices"][0]["message"]["content"] == FAILING_REPLY
    usage = summary["usage"]
    assert usage["completion_tokens"] == len(FAILING_REPLY.split())
    assert usage["prompt_tokens"] == len(USER[0]["content"].split()) + 3  # the simulator's count
    assert stream.cost == pytest.approx(
        list_cost(client, provider, usage["prompt_tokens"], usage["completion_tokens"])
    )
    assert stream.provider == provider and stream.cached is False
    assert stream.latency_ms > 0 and stream.time_to_first_token_ms > 0
    assert [a["outcome"] for a in stream.attempts] == ["success"]
    [row] = client.ledger.rows()
    assert row["outcome"] == "success" and row["estimated"] == 0
    assert (row["prompt_tokens"], row["completion_tokens"]) == (
        usage["prompt_tokens"],
        usage["completion_tokens"],
    )
    assert row["cost_usd"] == pytest.approx(stream.cost)


@pytest.mark.parametrize("route", ROUTES)
def test_stream_without_usage_is_charged_an_estimate(sim_env, route):
    set_replies(sim_env, route)
    sim_env.set_stream_fault(PROVIDER[route], StreamFault.NO_USAGE)
    client = make_client(route)
    stream = client.chat_completion(USER, max_tokens=20, stream=True)
    _, text = read(stream)
    assert text == FAILING_REPLY
    [row] = client.ledger.rows()
    assert row["outcome"] == "success" and row["estimated"] == 1
    assert row["completion_tokens"] == stream.usage["completion_tokens"] > 0


def test_usage_chunk_only_when_asked(sim_env):
    client = make_client("openai")
    chunks, _ = read(client.chat_completion(USER, stream=True))
    assert all(c["choices"] for c in chunks)
    stream = client.chat_completion(USER, stream=True, stream_options={"include_usage": True})
    chunks, _ = read(stream)
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == stream.usage


@pytest.mark.parametrize("route", ROUTES)
def test_leaving_after_two_chunks_settles_and_closes_the_connection(sim_env, route):
    set_replies(sim_env, route)
    provider = PROVIDER[route]
    sim_env.set_stream_fault(provider, StreamFault.OK, interval=0.05)
    client = make_client(route)
    seen = []
    with client.chat_completion(USER, max_tokens=20, stream=True) as stream:
        for chunk in stream:
            if chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                seen.append(chunk["choices"][0]["delta"]["content"])
            if len(seen) == 2:
                break
    assert "".join(seen) == "".join(pieces(FAILING_REPLY)[:2])
    [row] = client.ledger.rows()
    assert row["outcome"] == "error" and row["error_class"] == "Cancelled"
    assert row["estimated"] == 1 and row["completion_tokens"] > 0
    for _ in range(100):  # the server notices the close on its next write
        record = sim_env.stream_records(provider)[-1]
        if record["client_closed"]:
            break
        time.sleep(0.02)
    assert record["client_closed"] and not record["complete"]
    assert client.get_provider_status()[provider]["available"]  # leaving is not a failure


@pytest.mark.parametrize("route", ROUTES)
def test_streams_read_to_their_end_share_one_connection(sim_env, route, monkeypatch):
    """LiteLLM stops reading at the last event, before the end of the chunked body; the
    transport reads that end on close, so the connection goes back to the pool (given
    here all the time it may need: whether the end comes within 2 ms is not tested)."""
    from leadfactory.llm import http_clients

    connects = []
    connect = http_clients._DeadlineBackend.connect_tcp
    monkeypatch.setattr(http_clients, "_DRAIN", 10.0)
    monkeypatch.setattr(
        http_clients._DeadlineBackend,
        "connect_tcp",
        lambda backend, *args, **kw: connects.append(args) or connect(backend, *args, **kw),
    )
    set_replies(sim_env, route)
    client = make_client(route)
    for _ in range(3):
        with client.chat_completion(USER, max_tokens=20, stream=True) as stream:
            read(stream)
        assert stream.response is not None
    assert len(connects) <= 1  # the first stream's, unless an earlier test's was pooled


def test_stream_dropped_without_close_is_settled(sim_env):
    sim_env.set_stream_fault("openai", StreamFault.OK, interval=0.05)
    client = make_client("openai")
    stream = client.chat_completion(USER, max_tokens=20, stream=True)
    next(stream)
    del stream
    [row] = client.ledger.rows()
    assert row["outcome"] == "error" and row["error_class"] == "Cancelled"


def test_every_provider_failing_before_content_raises_before_any_chunk(sim_env):
    from leadfactory.llm import AllProvidersFailedError

    sim_env.set_stream_fault("openai", StreamFault.CUT)
    sim_env.set_stream_fault("ollama", StreamFault.CUT)
    client = make_client("openai", retries=0)
    client.config.providers["ollama"].max_retries = 0
    with pytest.raises(AllProvidersFailedError):
        client.chat_completion(USER, max_tokens=20, stream=True)
    assert [r["outcome"] for r in client.ledger.rows()] == ["error", "error"]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"stream": "yes"},
        {"stream_options": {"include_usage": True}},
        {"stream": True, "stream_options": 1},
    ],
)
def test_bad_stream_arguments_are_refused_before_any_call(sim_env, kwargs):
    client = LLMClient(LLMConfig(enable_caching=False))
    with pytest.raises(LLMValidationError):
        client.chat_completion(USER, **kwargs)
    assert sim_env.request_count("openai") == 0 and client.ledger.rows() == []


def test_a_completed_stream_is_replayed_from_the_cache(sim_env):
    sim_env.set_reply("openai", FAILING_REPLY)
    client = make_client("openai", cache=True)
    first = client.chat_completion(USER, max_tokens=20, stream=True)
    _, text = read(first)
    again = client.chat_completion(
        USER, max_tokens=20, stream=True, stream_options={"include_usage": True}
    )
    chunks, replayed = read(again)
    assert replayed == text == FAILING_REPLY
    assert again.cached is True and again.cost == 0 and again.provider == "openai"
    assert (
        chunks[-1]["usage"] == first.usage and chunks[-2]["choices"][0]["finish_reason"] == "stop"
    )
    whole = client.chat_completion(USER, max_tokens=20)  # the same answer, not streamed
    assert whole["cached"] is True and whole["choices"][0]["message"]["content"] == text
    assert sim_env.request_count("openai") == 1
    outcomes = [r["outcome"] for r in client.ledger.rows()]
    assert outcomes == ["success", "cache_hit", "cache_hit"]


def test_a_cut_stream_is_never_cached(sim_env):
    sim_env.set_reply("openai", FAILING_REPLY)
    sim_env.set_stream_fault("openai", StreamFault.CUT, after=2, times=1)
    client = make_client("openai", cache=True)
    with pytest.raises(LLMStreamInterruptedError):
        read(client.chat_completion(USER, max_tokens=20, stream=True))
    stream = client.chat_completion(USER, max_tokens=20, stream=True)
    _, text = read(stream)
    assert text == FAILING_REPLY and stream.cached is False
    assert sim_env.request_count("openai") == 2


TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]


@pytest.mark.parametrize("route", ["openai", "ollama"])
def test_a_tool_call_streams_and_counts_as_content(sim_env, route):
    client = make_client(route)
    stream = client.chat_completion(USER, max_tokens=20, tools=TOOLS, stream=True)
    chunks, text = read(stream)
    assert text == "" and any(c["choices"][0]["delta"].get("tool_calls") for c in chunks)
    message = stream.response["choices"][0]["message"]
    assert stream.response["choices"][0]["finish_reason"] == "tool_calls"
    [call] = message["tool_calls"]
    assert call["function"] == {"name": "get_weather", "arguments": '{"city": "sample"}'}
    assert call["id"].startswith("call_")


def test_a_stream_cut_inside_a_tool_call_carries_its_deltas(sim_env):
    sim_env.set_stream_fault("openai", StreamFault.CUT, after=2)
    client = make_client("openai")
    stream = client.chat_completion(USER, max_tokens=20, tools=TOOLS, stream=True)
    with pytest.raises(LLMStreamInterruptedError) as caught:
        read(stream)
    [call] = caught.value.tool_calls
    assert call["function"]["name"] == "get_weather"
    assert call["function"]["arguments"] == '{"city": "sample"}'[:9]  # the first half
    assert caught.value.partial_text == ""


def test_an_interrupted_stream_shows_no_key(sim_env):
    import traceback

    from .conftest import SENTINEL_KEY

    sim_env.set_stream_fault("anthropic", StreamFault.ERROR_EVENT, after=1)
    client = make_client("anthropic")
    with pytest.raises(LLMStreamInterruptedError) as caught:
        read(client.chat_completion(USER, max_tokens=20, stream=True))
    shown = "".join(traceback.format_exception(caught.value)) + repr(caught.value)
    assert SENTINEL_KEY not in shown and SENTINEL_KEY not in str(client.ledger.rows())


def test_a_streamed_call_is_traced_like_any_call(sim_env):
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from leadfactory.llm.telemetry import Telemetry

    exporter = InMemorySpanExporter()
    tracer = TracerProvider()
    tracer.add_span_processor(SimpleSpanProcessor(exporter))
    sim_env.set_stream_fault("openai", StreamFault.CUT, times=1)  # before the first text
    client = make_client("openai", retries=0)
    client = LLMClient(client.config, telemetry=Telemetry(traces=True, tracer_provider=tracer))
    _, text = read(client.chat_completion(USER, max_tokens=20, stream=True))
    names = [span.name for span in exporter.get_finished_spans()]
    tracer.shutdown()
    assert text and len([n for n in names if n.startswith("chat")]) == 2  # two attempts
    assert len([n for n in names if n.startswith("leadfactory.llm.chat")]) == 1


@pytest.mark.parametrize(
    ("route", "usage"),
    [
        ("openai", Usage(2000, 500, cached_tokens=1200, reasoning_tokens=300)),
        ("anthropic", Usage(3100, 400, cached_tokens=2000, cache_write_tokens=1000)),
        ("ollama_chat", Usage(900, 300)),
    ],
)
def test_a_stream_is_charged_its_usage_exactly_cached_tokens_included(sim_env, route, usage):
    provider = PROVIDER[route]
    sim_env.set_usage(provider, usage, times=2)
    client = make_client(route)
    whole = client.chat_completion(USER, max_tokens=1000)  # the same usage, not streamed
    stream = client.chat_completion(USER, max_tokens=1000, stream=True)
    read(stream)
    assert stream.usage["prompt_tokens"] == usage.prompt_tokens
    assert stream.usage["completion_tokens"] == usage.completion_tokens
    assert stream.usage.get("prompt_tokens_details") == whole["usage"].get("prompt_tokens_details")
    assert stream.cost == pytest.approx(whole["cost"])
    assert (stream.cost > 0) is (provider != "ollama")  # Ollama is free
    first, second = client.ledger.rows()
    assert second["estimated"] == 0 and second["cost_usd"] == pytest.approx(first["cost_usd"])
    for column in ("input_tokens", "cache_read_tokens", "cache_write_tokens", "output_tokens"):
        assert second[column] == first[column], column


def test_the_rate_limit_permit_is_taken_first_and_corrected_at_the_end(sim_env):
    sim_env.set_reply("openai", FAILING_REPLY)
    client = make_client("openai")
    client.config.providers["openai"].rate_limit_tpm = 100_000
    stream = client.chat_completion(USER, max_tokens=500, stream=True)
    limits = client._limiter.status("openai")
    assert limits["requests_in_window"] == 1
    assert limits["tokens_in_window"] >= 500  # the estimate: the prompt and max_tokens
    read(stream)
    assert client._limiter.status("openai")["tokens_in_window"] == stream.usage["total_tokens"]
