"""Bad input only ever gives LLMValidationError (or LLMConfigurationError) and costs nothing.

Property-based: hypothesis builds requests with exactly one defect whose field is known,
sends them at a client pointed at the simulator, and checks that the error is our own
validation error naming that field, that no provider was called and that the ledger
stayed empty. Explicit cases below the properties pin the shapes the properties do not
generate: content parts, tool_calls, bytes, integers beyond float range, malformed URLs.
"""

from __future__ import annotations

import asyncio
import math
import os
import re
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leadfactory.llm import (
    LLMClient,
    LLMConfig,
    LLMConfigurationError,
    LLMError,
    LLMValidationError,
    ProviderConfig,
)
from leadfactory.llm.validation import GENERATION_PARAMETERS, ROLES

from .conftest import SENTINEL_KEY

PROTOCOLS = ["openai", "anthropic", "ollama"]
USER = {"role": "user", "content": "What is the capital of France?"}
FIXTURES_OK = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
# The named arguments of chat_completion: never generated as "unknown" keyword names.
SIGNATURE = {"messages", "model", "temperature", "max_tokens", "cache", "caller", "stream"}

# -- strategies: junk values ---------------------------------------------------------------

big_ints = st.integers(min_value=-(10**300), max_value=10**300)  # within float range
floats = st.floats(allow_nan=True, allow_infinity=True)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    big_ints,
    floats,
    st.text(max_size=10),
    st.binary(max_size=10),
    st.complex_numbers(allow_nan=True, allow_infinity=True),
)
hashable_junk = st.one_of(
    st.none(),
    st.booleans(),
    big_ints,
    floats,
    st.binary(max_size=10),
    st.tuples(st.integers(), st.text(max_size=3)),
)
nested_junk = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(st.text(max_size=5), children, max_size=3),
        st.tuples(children, children),
    ),
    max_leaves=8,
)
good_text = st.text(max_size=30)
good_message = st.builds(
    lambda role, content: {"role": role, "content": content},
    st.sampled_from(["user", "assistant", "system"]),
    good_text,
)
good_part = st.builds(lambda text: {"type": "text", "text": text}, good_text)


def _not_a_sequence(value: Any) -> bool:
    return not isinstance(value, (list, tuple, range))


# -- strategies: one defect each, with the field it must be reported under ----------------


@st.composite
def defective_messages(draw) -> tuple[dict[str, Any], str]:
    """(keyword arguments of chat_completion, the field the error must name)."""
    kind = draw(
        st.sampled_from(
            [
                "not_a_list",
                "empty",
                "item",
                "role",
                "content",
                "part",
                "key",
                "only_system",
            ]
        )
    )
    if kind == "not_a_list":
        value = draw(
            st.one_of(
                scalars,
                st.dictionaries(st.text(max_size=5), nested_junk, max_size=3),
                st.sets(st.integers(), max_size=3),
                st.just(USER),  # one message, not a list of them
            ).filter(_not_a_sequence)
        )
        return {"messages": value}, "messages"
    if kind == "empty":
        return {"messages": draw(st.sampled_from([[], ()]))}, "messages"
    if kind == "only_system":
        texts = draw(st.lists(good_text, min_size=1, max_size=3))
        return {"messages": [{"role": "system", "content": t} for t in texts]}, "messages"

    before = draw(st.lists(good_message, max_size=3))
    after = draw(st.lists(good_message, max_size=2))
    index = len(before)
    where = f"messages[{index}]"
    role = draw(st.sampled_from(["user", "system", "developer"]))  # content is required
    if kind == "item":
        bad = draw(st.one_of(scalars, st.lists(nested_junk, max_size=3)))
        field = where
    elif kind == "role":
        bad = {"content": draw(good_text)}
        if draw(st.booleans()):
            bad["role"] = draw(
                st.one_of(hashable_junk, st.text(max_size=12).filter(lambda r: r not in ROLES))
            )
        field = f"{where}.role"
    elif kind == "content":
        bad = {"role": role}
        if draw(st.booleans()):
            bad["content"] = draw(
                st.one_of(
                    st.none(),
                    st.booleans(),
                    big_ints,
                    st.integers(min_value=10**300, max_value=10**400),  # huge
                    floats,
                    st.binary(max_size=10),
                    st.complex_numbers(),
                    st.dictionaries(st.text(max_size=5), nested_junk, max_size=3),
                    st.sets(st.integers(), max_size=3),
                )
            )
        field = f"{where}.content"
    elif kind == "part":
        parts = draw(st.lists(good_part, max_size=2))
        junk_part = draw(
            st.one_of(
                scalars,
                st.lists(nested_junk, max_size=2),
                st.dictionaries(
                    st.text(max_size=5).filter(lambda k: k != "type"), nested_junk, max_size=3
                ),
                st.builds(lambda t: {"type": t, "text": "x"}, hashable_junk),
            )
        )
        field = f"{where}.content[{len(parts)}]"
        bad = {"role": role, "content": [*parts, junk_part, *draw(st.lists(good_part))]}
    else:  # kind == "key": a key that is not a string
        bad = {"role": role, "content": draw(good_text)}
        bad[draw(hashable_junk)] = draw(scalars)
        field = where
    return {"messages": [*before, bad, *after]}, field


@st.composite
def defective_parameters(draw) -> tuple[dict[str, Any], str]:
    kind = draw(st.sampled_from(["temperature", "max_tokens", "unknown", "stream", "model"]))
    if kind == "temperature":
        value = draw(
            st.one_of(
                st.floats(max_value=-1e-12),  # (-0.0 is a fine temperature: it is 0)
                st.floats(min_value=2.0, exclude_min=True),
                st.sampled_from([math.nan, math.inf, -math.inf]),
                st.integers(min_value=-(10**300), max_value=-1),
                st.integers(min_value=3, max_value=10**300),
                st.booleans(),
                st.text(max_size=8),
                st.binary(max_size=8),
                st.complex_numbers(),
                st.lists(st.floats(0, 2), max_size=2),
            )
        )
    elif kind == "max_tokens":
        value = draw(
            st.one_of(
                st.integers(min_value=-(10**300), max_value=0),
                floats,  # 100.0 is not a whole number of tokens either
                st.booleans(),
                st.text(max_size=8),
                st.binary(max_size=8),
                st.lists(st.integers(1, 10), max_size=2),
            )
        )
    elif kind == "stream":  # True and False are fine (tests/test_stream_e2e.py)
        value = draw(scalars.filter(lambda v: v is not None and not isinstance(v, bool)))
    elif kind == "model":
        value = draw(
            st.one_of(
                st.booleans(),
                big_ints,
                floats,
                st.binary(max_size=8),
                st.lists(st.text(max_size=5), max_size=2),
                st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2),
                st.from_regex(r"\s*", fullmatch=True),
            )
        )
    else:  # an unknown keyword argument: its name is the field
        kind = draw(
            st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,20}", fullmatch=True).filter(
                lambda n: n not in GENERATION_PARAMETERS and n not in SIGNATURE
            )
        )
        value = draw(nested_junk)
    return {"messages": [USER], kind: value}, kind


any_defect = st.one_of(defective_messages(), defective_parameters())


# -- the property ----------------------------------------------------------------------------


@pytest.fixture
def client(sim_env):
    client = LLMClient(LLMConfig())  # caching on, as users get it
    yield client
    client.close()


def assert_rejected_for_free(
    error: BaseException | None, field: str, client: LLMClient, sim, arguments: dict
) -> None:
    shown = f"{arguments!r:.300}"
    assert error is not None, f"accepted: {shown}"
    assert isinstance(error, LLMValidationError), f"{type(error).__name__}: {error} for {shown}"
    assert error.metadata.get("field") == field, f"{error.metadata} for {shown}"
    assert field in str(error), f"{error} does not name {field}"
    assert error.provider is None
    assert [sim.request_count(p) for p in PROTOCOLS] == [0, 0, 0]
    assert client.ledger.rows() == []


def call_sync(client: LLMClient, arguments: dict) -> BaseException | None:
    try:
        client.chat_completion(**arguments)
    except Exception as error:
        return error
    return None


def call_async(client: LLMClient, arguments: dict) -> BaseException | None:
    try:
        asyncio.run(client.achat_completion(**arguments))
    except Exception as error:
        return error
    return None


@settings(max_examples=400, suppress_health_check=FIXTURES_OK, deadline=None, database=None)
@given(case=any_defect)
def test_bad_input_gives_a_validation_error_naming_the_field(client, sim_env, case):
    arguments, field = case
    error = call_sync(client, arguments)
    assert_rejected_for_free(error, field, client, sim_env, arguments)


@settings(max_examples=60, suppress_health_check=FIXTURES_OK, deadline=None, database=None)
@given(case=any_defect)
def test_async_bad_input_gives_a_validation_error_naming_the_field(client, sim_env, case):
    arguments, field = case
    error = call_async(client, arguments)
    assert_rejected_for_free(error, field, client, sim_env, arguments)


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


# -- malformed configuration -----------------------------------------------------------------


@pytest.fixture
def keyed_env(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SENTINEL_KEY)
    monkeypatch.setenv("ANTHROPIC_API_KEY", SENTINEL_KEY)
    return monkeypatch


def assert_names(error: LLMConfigurationError, name: str) -> None:
    assert isinstance(error, LLMConfigurationError), f"{type(error).__name__}: {error}"
    assert isinstance(error, ValueError)  # documented: it is also a ValueError
    assert name in str(error), f"{error} does not name {name}"
    assert SENTINEL_KEY not in str(error) and SENTINEL_KEY not in repr(error)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("OPENAI_TIMEOUT", "abc"),
        ("OPENAI_TIMEOUT", "0"),
        ("OPENAI_TIMEOUT", "nan"),
        ("ANTHROPIC_TIMEOUT", "-1"),
        ("OLLAMA_TIMEOUT", ""),
        ("LLM_MAX_FALLBACK_ATTEMPTS", "-1"),
        ("LLM_MAX_FALLBACK_ATTEMPTS", "two"),
        ("LLM_FALLBACK_STRATEGY", "bogus"),
        ("OPENAI_RATE_LIMIT_RPM", "1.5"),
        ("ANTHROPIC_RATE_LIMIT_TPM", "0"),
        ("LLM_DAILY_COST_LIMIT", "-5"),
        ("LLM_MONTHLY_COST_LIMIT", "lots"),
        ("LLM_MAX_COST_PER_REQUEST", "-0.01"),
        ("LLM_BUDGET_ALERT_THRESHOLD", "5"),
        ("LLM_COST_TRACKING", "maybe"),
        ("LLM_ENABLE_CACHING", "perhaps"),
        ("LLM_DEFAULT_TEMPERATURE", "3"),
        ("LLM_DEFAULT_MAX_TOKENS", "0"),
        ("LLM_MAX_RETRY_AFTER", "forever"),
        ("LLM_MAX_RETRY_AFTER", "0"),
        ("OPENAI_BASE_URL", "not-a-url"),
        ("ANTHROPIC_BASE_URL", "ftp://api.anthropic.com"),
        ("OPENAI_MAX_RETRIES", "-1"),
        ("OLLAMA_RETRY_DELAY", "-0.5"),
        ("OPENAI_COST_PER_1K_TOKENS", "-0.03"),
        ("OPENAI_PRIORITY", "high"),
        ("OPENAI_ENABLED", "sometimes"),
    ],
)
def test_malformed_environment_names_the_variable(keyed_env, variable, value):
    keyed_env.setenv(variable, value)
    with pytest.raises(LLMConfigurationError) as caught:
        LLMConfig()
    assert_names(caught.value, variable)
    with pytest.raises(LLMConfigurationError):
        LLMClient()  # the client reads the environment the same way


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("OLLAMA_HOST", "not a url"),
        ("OPENAI_BASE_URL", "http:///v1"),
        ("OPENAI_BASE_URL", "http://api example.com/v1"),
        ("OPENAI_BASE_URL", "http://"),
        ("ANTHROPIC_BASE_URL", "https://:443"),
        ("OLLAMA_HOST", "http://"),
        ("OLLAMA_HOST", ":11434"),
    ],
)
def test_malformed_url_names_the_variable(keyed_env, variable, value):
    keyed_env.setenv(variable, value)
    with pytest.raises(LLMConfigurationError) as caught:
        LLMConfig()
    assert_names(caught.value, variable)


@pytest.mark.parametrize(
    "variable",
    [
        "LLM_DAILY_COST_LIMIT",
        "LLM_MONTHLY_COST_LIMIT",
        "LLM_MAX_COST_PER_REQUEST",
        "OPENAI_COST_PER_1K_TOKENS",
        "OPENAI_TIMEOUT",
        "OPENAI_RETRY_DELAY",
        "LLM_CACHE_TTL",
        "LLM_MAX_RETRY_AFTER",
    ],
)
def test_infinite_setting_is_refused_or_works(sim_env, monkeypatch, variable):
    """``inf`` must either be refused up front, naming the variable, or work."""
    monkeypatch.setenv(variable, "inf")
    try:
        client = LLMClient(LLMConfig(enable_caching=False))
    except LLMConfigurationError as error:
        assert_names(error, variable)
        return
    with client:
        response = client.chat_completion([USER], model="openai", max_tokens=5)
    assert response["provider"] == "openai"


@pytest.mark.parametrize("value", ["inf", "nan", "-1"])
def test_cooldown_setting_error_names_the_variable(monkeypatch, value):
    monkeypatch.setenv("LLM_COOLDOWN_SECONDS", value)
    try:
        LLMClient(LLMConfig())
    except LLMConfigurationError as error:
        assert_names(error, "LLM_COOLDOWN_SECONDS")
    # accepted without error is fine too, for inf: an endless cooldown is a choice


@pytest.mark.parametrize(
    ("fields", "name"),
    [
        ({"timeout": 0}, "timeout"),
        ({"timeout": -1}, "timeout"),
        ({"timeout": "abc"}, "timeout"),
        ({"timeout": math.nan}, "timeout"),
        ({"rate_limit_rpm": 1.5}, "rate_limit_rpm"),
        ({"rate_limit_tpm": 0}, "rate_limit_tpm"),
        ({"cost_per_1k_tokens": -1}, "cost_per_1k_tokens"),
        ({"max_retries": -1}, "max_retries"),
        ({"retry_delay": -1}, "retry_delay"),
        ({"retry_delay": math.nan}, "retry_delay"),
        ({"base_url": "ftp://example.com"}, "base_url"),
        ({"base_url": "example.com"}, "base_url"),
        ({"name": ""}, "name"),
        ({"default_model": ""}, "default_model"),
        ({"priority": "high"}, "priority"),
        ({"enabled": "maybe"}, "enabled"),
        ({"extra_params": "x"}, "extra_params"),
        ({"api_key": 12345}, "api_key"),
        ({"bogus": 1}, "bogus"),
    ],
)
def test_malformed_provider_config_names_the_field(fields, name):
    values = {"name": "custom", "default_model": "m", "api_key": SENTINEL_KEY, **fields}
    with pytest.raises(LLMConfigurationError) as caught:
        ProviderConfig(**values)
    assert_names(caught.value, name)


@pytest.mark.parametrize(
    ("field", "value"),
    [("timeout", -1), ("cost_per_1k_tokens", "x"), ("base_url", "nope"), ("max_retries", 1.5)],
)
def test_malformed_provider_assignment_names_the_field(field, value):
    provider = ProviderConfig(name="custom", default_model="m", api_key=SENTINEL_KEY)
    with pytest.raises(LLMConfigurationError) as caught:
        setattr(provider, field, value)
    assert_names(caught.value, field)
    assert SENTINEL_KEY not in repr(provider)


# -- property: junk strings in numeric variables ---------------------------------------------

# variable -> (how to read the loaded value, integer?, smallest allowed, strictly above it?)
NUMERIC_VARIABLES = {
    "OPENAI_TIMEOUT": (lambda c: c.providers["openai"].timeout, False, 0.0, True),
    "OLLAMA_MAX_RETRIES": (lambda c: c.providers["ollama"].max_retries, True, 0, False),
    "OPENAI_RATE_LIMIT_RPM": (lambda c: c.providers["openai"].rate_limit_rpm, True, 1, False),
    "LLM_MAX_FALLBACK_ATTEMPTS": (lambda c: c.max_fallback_attempts, True, 1, False),
    "LLM_DAILY_COST_LIMIT": (lambda c: c.cost_config.daily_cost_limit, False, 0.0, False),
}
env_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    max_size=12,
)
plain_numbers = st.one_of(
    st.from_regex(r"[1-9][0-9]{0,5}", fullmatch=True),
    st.from_regex(r"[0-9]{1,4}\.[0-9]{1,3}", fullmatch=True),
    st.from_regex(r"-[0-9]{1,4}(\.[0-9]{1,3})?", fullmatch=True),
)
junk_strings = st.one_of(
    env_text,
    plain_numbers,
    st.floats().map(repr),
    st.integers().map(str),
    st.sampled_from(["nan", "-inf", "1e999", "0x10", "1,5", "1 000", "½", "١٢", "true", " "]),
    st.sampled_from(["none", "OFF", " None "]),  # "no limit", where None is accepted
)
NO_LIMIT = {"none", "off"}
OPTIONAL = {"LLM_DAILY_COST_LIMIT"}  # the variables above that accept "no limit"


def _plain_number(text: str) -> bool:
    return re.fullmatch(r"-?[0-9]+(\.[0-9]+)?", text) is not None


@settings(max_examples=150, suppress_health_check=FIXTURES_OK, deadline=None, database=None)
@given(variable=st.sampled_from(sorted(NUMERIC_VARIABLES)), text=junk_strings)
def test_numeric_variables_parse_or_name_the_variable(keyed_env, variable, text):
    read, integer, low, strict = NUMERIC_VARIABLES[variable]
    keyed_env.setenv(variable, text)
    try:
        config = LLMConfig()
    except LLMConfigurationError as error:
        assert_names(error, variable)
        if _plain_number(text):  # a plain number is refused only when out of range
            number = float(text)
            in_range = number > low if strict else number >= low
            assert not in_range or (integer and not number.is_integer()), (
                f"{variable}={text!r} refused: {error}"
            )
        return
    except LLMError as error:  # any other of our errors is the wrong class
        pytest.fail(f"{variable}={text!r}: {type(error).__name__}: {error}")
    finally:
        os.environ.pop(variable, None)
    value = read(config)
    if text.strip().lower() in NO_LIMIT:
        assert variable in OPTIONAL and value is None, f"{variable}={text!r} -> {value!r}"
        return
    written = text.strip().replace("_", "")  # Python's reading (it allows 1_000 too)
    if integer:
        assert isinstance(value, int) and not isinstance(value, bool)
        assert value == int(Decimal(written)), f"{variable}={text!r} -> {value!r}"
    else:
        assert value == float(written), f"{variable}={text!r} -> {value!r}"
    assert value > low if strict else value >= low
