"""The pure parts of streaming: what counts as content, putting chunks together, replay,
the stream arguments, and the shape of LLMStreamInterruptedError."""

from __future__ import annotations

import pickle

import pytest

from leadfactory.llm import LLMError, LLMStreamInterruptedError, LLMValidationError
from leadfactory.llm.stream_assembly import Assembly, has_content, replay_chunks
from leadfactory.llm.streaming import stream_request


def chunk(delta: dict, finish: str | None = None) -> dict:
    return {
        "id": "c1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


@pytest.mark.parametrize(
    ("delta", "content"),
    [
        ({"role": "assistant"}, False),
        ({"role": "assistant", "content": ""}, False),
        ({}, False),
        ({"content": "Hi"}, True),
        ({"tool_calls": [{"index": 0, "id": "t1", "function": {"name": "f"}}]}, True),
    ],
)
def test_only_text_or_a_tool_call_is_content(delta, content):
    assert has_content(chunk(delta)) is content
    assert Assembly().add(chunk(delta)) is content


def test_tool_call_deltas_are_merged_per_call():
    parts = Assembly()
    parts.add(chunk({"role": "assistant"}))
    parts.add(
        chunk(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "t1",
                        "type": "function",
                        "function": {"name": "get_", "arguments": ""},
                    }
                ]
            }
        )
    )
    parts.add(
        chunk(
            {
                "tool_calls": [
                    {"index": 0, "function": {"name": "weather", "arguments": '{"city": '}}
                ]
            }
        )
    )
    parts.add(chunk({"tool_calls": [{"index": 1, "id": "t2", "function": {"name": "now"}}]}))
    parts.add(chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Paris"}'}}]}))
    parts.add(chunk({}, "tool_calls"))
    assert parts.tool_calls == [
        {
            "id": "t1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
        },
        {"id": "t2", "type": "function", "function": {"name": "now", "arguments": ""}},
    ]
    answer = parts.response({"prompt_tokens": 3, "completion_tokens": 4})
    assert answer["choices"][0]["finish_reason"] == "tool_calls"
    assert answer["choices"][0]["message"]["content"] is None
    assert answer["usage"] == {"prompt_tokens": 3, "completion_tokens": 4}


def test_text_is_exactly_what_arrived():
    parts = Assembly()
    for piece in ("Hel", "lo, ", "", "world"):
        parts.add(chunk({"content": piece}))
    assert parts.text == "Hello, world" and parts.finish_reason is None
    assert "usage" not in parts.response(None)


def test_replay_gives_back_the_same_answer():
    answer = {
        "id": "x",
        "created": 5,
        "model": "m",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Paris."},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 2, "completion_tokens": 1, "total_tokens": 3},
    }
    chunks = replay_chunks(answer, include_usage=True)
    parts = Assembly()
    for c in chunks[:-1]:
        parts.add(c)
    assert parts.text == "Paris." and parts.finish_reason == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == answer["usage"]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert replay_chunks(answer)[-1]["choices"]  # no usage chunk unless asked


def test_stream_arguments():
    assert stream_request({}) is None
    kwargs = {"stream": False, "top_p": 1}
    assert stream_request(kwargs) is None and kwargs == {"top_p": 1}
    assert stream_request({"stream": True}) is False
    assert stream_request({"stream": True, "stream_options": {"include_usage": True}}) is True
    for bad in (
        {"stream": 1},
        {"stream": "yes"},
        {"stream": False, "stream_options": {"include_usage": True}},
        {"stream": True, "stream_options": {"include_usage": "yes"}},
        {"stream": True, "stream_options": {"other": True}},
    ):
        with pytest.raises(LLMValidationError):
            stream_request(dict(bad))


def test_the_error_carries_what_arrived_and_survives_pickling():
    error = LLMStreamInterruptedError(
        "openai: interrupted",
        "openai",
        partial_text="Hello",
        tool_calls=[{"id": "t1"}],
        usage={"prompt_tokens": 5, "completion_tokens": 1, "estimated": True},
    )
    error.attempts = [{"provider": "openai", "outcome": "error"}]
    assert isinstance(error, LLMError)
    again = pickle.loads(pickle.dumps(error))
    assert (again.partial_text, again.tool_calls, again.usage, again.attempts, again.provider) == (
        "Hello",
        [{"id": "t1"}],
        error.usage,
        error.attempts,
        "openai",
    )


# -- the flow's rule, driven alone with a fake clock (the helpers of tests/flow_script.py) --


def interrupted(abandoned: bool = False) -> LLMStreamInterruptedError:
    return LLMStreamInterruptedError(
        "openai: the stream was interrupted after 2 chunks",
        "openai",
        partial_text="Hello there",
        metadata={"abandoned": True} if abandoned else None,
    )


@pytest.mark.parametrize("abandoned", [False, True])
def test_a_stream_cut_after_its_first_text_is_settled_and_raised_never_retried(abandoned):
    from tests.flow_script import Script, services

    script = Script({"openai": [interrupted(abandoned)], "anthropic": [RuntimeError("never")]})
    shared = services(script, names=("openai", "anthropic"), retries=2)
    with pytest.raises(LLMStreamInterruptedError) as caught:
        script.run(shared)
    assert script.calls == ["openai"] and script.sleeps == []
    [row] = script.ledger.settled
    assert row["outcome"] == "error" and row["estimated"] is True
    assert row["error_class"] == ("Cancelled" if abandoned else "LLMStreamInterruptedError")
    assert row["completion_tokens"] == caught.value.usage["completion_tokens"] > 0
    assert caught.value.usage["estimated"] is True
    assert [a["outcome"] for a in caught.value.attempts] == ["error"]
    # Leaving a stream is not the provider's failure; a cut is (the breaker opens at 1).
    assert shared.health.check("openai").allowed is abandoned
