"""The simulator's tool calls, schema samples and refusal bodies, alone (no LiteLLM)."""

from __future__ import annotations

import json

import pytest

from leadfactory.llm.simulator import Fault
from leadfactory.llm.simulator.refusals import refusal_response
from leadfactory.llm.simulator.tools import anthropic_answer, ollama_answer, openai_answer, sample


@pytest.mark.parametrize(
    ("schema", "value"),
    [
        ({"type": "string"}, "sample"),
        ({"type": "integer"}, 1),
        ({"type": ["null", "number"]}, 1.5),
        ({"enum": ["b2b", "b2c"]}, "b2b"),
        ({"const": 7}, 7),
        ({"anyOf": [{"type": "boolean"}, {"type": "string"}]}, True),
        ({"type": "array", "items": {"type": "integer"}, "minItems": 2}, [1, 1]),
        (
            {"properties": {"a": {"type": "object", "properties": {"b": {}}}}},
            {"a": {"b": "sample"}},
        ),
        (None, "sample"),
    ],
)
def test_sample_satisfies_the_schema(schema, value):
    assert sample(schema) == value


TOOLS = [
    {"type": "function", "function": {"name": "first", "parameters": {"type": "object"}}},
    {
        "type": "function",
        "function": {
            "name": "second",
            "parameters": {"type": "object", "properties": {"n": {"type": "integer"}}},
        },
    },
]
MESSAGE = {"role": "assistant", "content": "text", "refusal": None}


def test_openai_calls_the_named_tool_else_the_first_and_none_means_text():
    choice = {"type": "function", "function": {"name": "second"}}
    message, finish = openai_answer({"tools": TOOLS, "tool_choice": choice}, MESSAGE, "stop")
    [call] = message["tool_calls"]
    assert finish == "tool_calls" and message["content"] is None
    assert call["function"] == {"name": "second", "arguments": '{"n": 1}'}
    message, _ = openai_answer({"tools": TOOLS}, MESSAGE, "stop")
    assert message["tool_calls"][0]["function"]["name"] == "first"
    assert openai_answer({"tools": TOOLS, "tool_choice": "none"}, MESSAGE, "length") == (
        MESSAGE,
        "length",
    )
    mode, _ = openai_answer({"response_format": {"type": "json_object"}}, MESSAGE, "stop")
    assert json.loads(mode["content"]) == {"answer": "sample"}


def test_anthropic_answers_tool_use_or_output_format_text():
    tools = [{"name": "a", "input_schema": {}}, {"name": "json_tool_call", "input_schema": {}}]
    base = {"content": [{"type": "text", "text": "x"}], "stop_reason": "end_turn"}
    forced = anthropic_answer(
        {"tools": tools, "tool_choice": {"type": "tool", "name": "json_tool_call"}}, base
    )
    [use] = forced["content"]
    assert (use["type"], use["name"], forced["stop_reason"]) == (
        "tool_use",
        "json_tool_call",
        "tool_use",
    )
    output = {"type": "json_schema", "schema": {"properties": {"k": {"type": "integer"}}}}
    native = anthropic_answer({"output_format": output}, base)
    assert json.loads(native["content"][0]["text"]) == {"k": 1}
    assert anthropic_answer({"tools": tools, "tool_choice": {"type": "none"}}, base) == base


def test_ollama_native_tool_arguments_are_an_object():
    final = {"message": {"role": "assistant", "content": "x"}, "done_reason": "stop"}
    answered = ollama_answer({"tools": TOOLS[1:]}, final)
    assert answered["message"]["tool_calls"] == [
        {"function": {"name": "second", "arguments": {"n": 1}}}
    ]
    assert json.loads(ollama_answer({"format": "json"}, final)["message"]["content"]) == {
        "answer": "sample"
    }


@pytest.mark.parametrize(
    ("protocol", "shape", "fault", "check"),
    [
        (
            "openai",
            "openai",
            Fault.CONTEXT_LENGTH,
            lambda b: b["error"]["code"] == "context_length_exceeded",
        ),
        (
            "openai",
            "openai",
            Fault.CONTENT_POLICY,
            lambda b: b["error"]["code"] == "content_policy_violation",
        ),
        (
            "anthropic",
            "anthropic",
            Fault.CONTEXT_LENGTH,
            lambda b: b["error"]["message"].startswith("prompt is too long"),
        ),
        (
            "ollama",
            "ollama",
            Fault.CONTEXT_LENGTH,
            lambda b: b == {"error": "the input length exceeds the context length"},
        ),
        ("ollama", "openai", Fault.CONTEXT_LENGTH, lambda b: b["error"]["code"] is None),
    ],
)
def test_refusal_bodies_are_400s_in_each_vendors_shape(protocol, shape, fault, check):
    status, ctype, body, _ = refusal_response(protocol, fault, {"messages": []}, shape)
    assert (status, ctype) == (400, "application/json")
    assert check(json.loads(body))
