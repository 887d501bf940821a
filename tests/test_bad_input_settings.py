"""Malformed settings give LLMConfigurationError naming the variable or field, never the key.

Malformed environment variables and URLs, infinite and negative numbers, cooldowns,
ProviderConfig fields set at construction or by assignment; and a property: junk strings
in numeric variables either parse to a plain number within range, or are "no limit"
where that is allowed, or name the variable.
"""

from __future__ import annotations

import math
import os
import re
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leadfactory.llm import (
    LLMClient,
    LLMConfig,
    LLMConfigurationError,
    LLMError,
    ProviderConfig,
)

from .conftest import SENTINEL_KEY
from .rejection_checks import FIXTURES_OK, USER

# fixtures, imported so that pytest finds them in this module
from .rejection_checks import client as client

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
