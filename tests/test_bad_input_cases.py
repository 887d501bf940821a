"""Bad input the properties do not generate, case by case: each gives LLMValidationError
naming the field and costs nothing.

Content parts, ``tool_calls``, bytes, integers beyond float range, each generation
parameter, and requests that are not requests at all; and the other way round, the
shapes OpenAI documents pass unchanged, so the checks are not too strict. The properties
are in tests/test_bad_input.py.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from .conftest import SENTINEL_KEY
from .rejection_checks import USER, assert_rejected_for_free, call_sync

# fixtures, imported so that pytest finds them in this module
from .rejection_checks import client as client


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"messages": "hello"}, "messages"),
        ({"messages": b"hello"}, "messages"),
        ({"messages": None}, "messages"),
        ({"messages": USER}, "messages"),
        ({"messages": []}, "messages"),
        ({"messages": [USER, 42]}, "messages[1]"),
        ({"messages": [USER, {"role": "robot", "content": "x"}]}, "messages[1].role"),
        ({"messages": [{"content": "x"}]}, "messages[0].role"),
        ({"messages": [{"role": "user"}]}, "messages[0].content"),
        ({"messages": [{"role": "user", "content": math.nan}]}, "messages[0].content"),
        ({"messages": [{"role": "user", "content": 10**400}]}, "messages[0].content"),
        ({"messages": [{"role": "user", "content": b"hi"}]}, "messages[0].content"),
        ({"messages": [{"role": "user", "content": [{"text": "x"}]}]}, "messages[0].content[0]"),
        ({"messages": [{"role": "system", "content": "x"}]}, "messages"),
        ({"messages": [USER], "temperature": -0.1}, "temperature"),
        ({"messages": [USER], "temperature": 2.01}, "temperature"),
        ({"messages": [USER], "temperature": math.nan}, "temperature"),
        ({"messages": [USER], "temperature": math.inf}, "temperature"),
        ({"messages": [USER], "temperature": "0.5"}, "temperature"),
        ({"messages": [USER], "temperature": True}, "temperature"),
        ({"messages": [USER], "max_tokens": 0}, "max_tokens"),
        ({"messages": [USER], "max_tokens": -5}, "max_tokens"),
        ({"messages": [USER], "max_tokens": 100.0}, "max_tokens"),
        ({"messages": [USER], "max_tokens": "100"}, "max_tokens"),
        ({"messages": [USER], "max_tokens": True}, "max_tokens"),
        ({"messages": [USER], "stream": "yes"}, "stream"),
        ({"messages": [USER], "bogus": 1}, "bogus"),
        ({"messages": [USER], "api_key": SENTINEL_KEY}, "api_key"),
        ({"messages": [USER], "model": 42}, "model"),
        ({"messages": [USER], "model": ""}, "model"),
        ({"messages": [USER], "top_p": 1.5}, "top_p"),
        ({"messages": [USER], "n": 3}, "n"),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_known_bad_inputs(client, sim_env, arguments, field):
    error = call_sync(client, arguments)
    assert_rejected_for_free(error, field, client, sim_env, arguments)
    assert SENTINEL_KEY not in str(error) and SENTINEL_KEY not in repr(error)


# -- shapes the first checks missed: content parts, tool_calls, bytes, huge numbers ---------


def _assistant_call(name: str = "weather", arguments: Any = '{"city": "Paris"}') -> dict:
    call = {"id": "call_1", "type": "function", "function": {"name": name, "arguments": arguments}}
    return {"role": "assistant", "content": None, "tool_calls": [call]}


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        pytest.param(
            {"messages": [{"role": ["user"], "content": "x"}]},
            "messages[0].role",
            id="role-list",
        ),
        pytest.param(
            {"messages": [{"role": {"user": 1}, "content": "x"}]},
            "messages[0].role",
            id="role-dict",
        ),
        pytest.param(
            {"messages": [{"role": "user", "content": [{"type": "text", "text": 123}]}]},
            "messages[0].content[0]",
            id="part-text-int",
        ),
        pytest.param(
            {"messages": [{"role": "user", "content": [{"type": "text"}]}]},
            "messages[0].content[0]",
            id="part-text-missing",
        ),
        pytest.param(
            {"messages": [{"role": "user", "content": [{"type": "bogus"}]}]},
            "messages[0].content[0]",
            id="part-type-unknown",
        ),
        pytest.param(
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": 5}]}]},
            "messages[0].content[0]",
            id="part-image-url-int",
        ),
        pytest.param(
            {"messages": [{"role": "user", "content": "x", "tool_calls": "junk"}]},
            "messages[0].tool_calls",
            id="tool-calls-str",
        ),
        pytest.param(
            {"messages": [{"role": "assistant", "content": None, "tool_calls": 7}, USER]},
            "messages[0].tool_calls",
            id="tool-calls-int",
        ),
        pytest.param(
            {"messages": [{"role": "user", "content": "x", "name": b"bytes"}]},
            "messages[0].name",
            id="name-bytes",
        ),
        pytest.param(
            {"messages": [USER], "max_tokens": 10**400},
            "max_tokens",
            id="max-tokens-1e400",
        ),
        pytest.param(
            {"messages": [USER], "temperature": 10**400},
            "temperature",
            id="temperature-1e400",
        ),
        pytest.param(
            {"messages": [USER], "top_p": -(10**400)},
            "top_p",
            id="top-p-minus-1e400",
        ),
        pytest.param(
            {"messages": [USER], "seed": b"42"},
            "seed",
            id="seed-bytes",
        ),
        pytest.param(
            {"messages": [USER], "stop": {"a", "b"}},
            "stop",
            id="stop-set",
        ),
        pytest.param(
            {"messages": [USER], "n": True},
            "n",
            id="n-true",
        ),
        pytest.param(
            {"messages": [{"role": "user", "content": []}]},
            "messages[0].content",
            id="parts-empty",
        ),
        pytest.param(
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]},
            "messages[0].content[0]",
            id="part-image-url-no-url",
        ),
        pytest.param(
            {"messages": [{"role": "user", "content": [{"type": "text", "text": "x", "n": b""}]}]},
            "messages[0].content[0].n",
            id="part-extra-bytes",
        ),
        pytest.param(
            {
                "messages": [
                    {"role": "assistant", "content": "x", "tool_calls": [{"id": "1"}]},
                    USER,
                ]
            },
            "messages[0].tool_calls[0]",
            id="tool-call-no-function",
        ),
        pytest.param(
            {"messages": [_assistant_call(arguments={"city": "Paris"}), USER]},
            "messages[0].tool_calls[0]",
            id="tool-call-arguments-dict",
        ),
        pytest.param(
            {"messages": [_assistant_call(name=""), USER]},
            "messages[0].tool_calls[0]",
            id="tool-call-name-empty",
        ),
        pytest.param(
            {"messages": [USER, _assistant_call(), {"role": "tool", "content": "sunny"}]},
            "messages[2].tool_call_id",
            id="tool-result-without-id",
        ),
        pytest.param(
            {"messages": [{"role": "user", "content": "x", "metadata": {"score": math.nan}}]},
            "messages[0].metadata.score",
            id="extra-key-nan",
        ),
        pytest.param(
            {"messages": [{"role": "user", "content": "x", "name": 7}]},
            "messages[0].name",
            id="name-int",
        ),
        pytest.param({"messages": [USER], "n": 10**400}, "n", id="n-1e400"),
        pytest.param({"messages": [USER], "seed": 2**64}, "seed", id="seed-beyond-int64"),
        pytest.param({"messages": [USER], "seed": True}, "seed", id="seed-true"),
        pytest.param({"messages": [USER], "stop": ["a", 1]}, "stop[1]", id="stop-list-int"),
        pytest.param({"messages": [USER], "logprobs": 1}, "logprobs", id="logprobs-int"),
        pytest.param({"messages": [USER], "tools": [{"a": {1, 2}}]}, "tools[0].a", id="tools-set"),
        pytest.param({"messages": [USER], "logit_bias": {"x": 1}}, "logit_bias", id="bias-key"),
        pytest.param({"messages": [USER], "max_tokens": 2**31}, "max_tokens", id="max-tokens-2e31"),
        pytest.param(
            {"messages": [USER], "presence_penalty": 10**400},
            "presence_penalty",
            id="presence-penalty-1e400",
        ),
    ],
)
def test_bad_shapes_and_values(client, sim_env, arguments, field):
    error = call_sync(client, arguments)
    assert_rejected_for_free(error, field, client, sim_env, arguments)
    assert SENTINEL_KEY not in str(error)


GOOD_MESSAGES = [
    {"role": "developer", "content": "Answer briefly."},
    {"role": "user", "content": [{"type": "text", "text": "What is in this image?"}]},
    {
        "role": "user",
        "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
            {"type": "image_url", "image_url": "https://example.com/cat.png"},
            {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}},
            {"type": "file", "file": {"file_id": "file-1"}},
        ],
        "name": "alice",
    },
    {"role": "assistant", "content": None, "tool_calls": [_assistant_call()["tool_calls"][0]]},
    {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    {"role": "assistant", "content": "Sunny.", "tool_calls": []},
]


def test_well_formed_messages_and_parameters_pass():
    """The shapes OpenAI documents pass unchanged (the checks are not too strict)."""
    from leadfactory.llm.validation import check_messages, check_parameters

    assert check_messages(GOOD_MESSAGES) == GOOD_MESSAGES
    extra = {
        "top_p": 1,
        "n": 1,
        "stop": ["\n\n"],
        "seed": -(2**63),
        "presence_penalty": -2,
        "logit_bias": {50256: -100, "42": 1.5},
        "logprobs": True,
        "top_logprobs": 5,
        "tools": [{"type": "function", "function": {"name": "weather", "parameters": {}}}],
        "tool_choice": "auto",
        "response_format": {"type": "json_object"},
        "extra_headers": {"X-Trace": "1"},
        "user": None,
    }
    temperature, max_tokens, checked = check_parameters(0, 2**31 - 1, extra)
    assert (temperature, max_tokens) == (0.0, 2**31 - 1)
    assert checked["logit_bias"] == {"50256": -100, "42": 1.5}  # JSON keys are strings
    assert "user" not in checked
