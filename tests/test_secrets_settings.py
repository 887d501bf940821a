"""The API key never leaks from a configuration mistake around it.

Errors of a ProviderConfig or of the environment never show the key; every known key is
redacted from configuration errors, from the environment or a .env file, even one that
does not look like a key; a provider's key is redacted from its own errors.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from leadfactory.llm import (
    LLMConfig,
    LLMConfigurationError,
    ProviderConfig,
)

from .conftest import SENTINEL_KEY
from .secret_evidence import Evidence

# fixtures, imported so that pytest finds them in this module
from .secret_evidence import keyed_env as keyed_env

# -- configuration mistakes around the key ---------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        {"api_key": [SENTINEL_KEY]},
        {"api_key": SENTINEL_KEY, "timeout": "abc"},
        {"api_keys": SENTINEL_KEY},
        {"extra_params": {"api_key": SENTINEL_KEY}, "timeout": -1},
        {"apikey": SENTINEL_KEY},
        {"key": SENTINEL_KEY},
        {"token": SENTINEL_KEY},
        {"api_key": SENTINEL_KEY, "base_url": SENTINEL_KEY},
    ],
    ids=lambda fields: "+".join(fields),
)
def test_no_key_in_provider_config_errors(fields):
    with pytest.raises(LLMConfigurationError) as caught:
        ProviderConfig(name="custom", default_model="m", **fields)
    found = Evidence()
    found.error("ProviderConfig error", caught.value)
    found.assert_clean()


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("OPENAI_TIMEOUT", "abc"),
        ("ANTHROPIC_MAX_RETRIES", "-1"),
        ("OPENAI_BASE_URL", SENTINEL_KEY),
        ("LLM_FALLBACK_STRATEGY", SENTINEL_KEY),
    ],
)
def test_no_key_in_environment_errors(keyed_env, monkeypatch, variable, value):
    """The sentinel is OPENAI_API_KEY (and the others'); a bad setting must not show it."""
    monkeypatch.setenv(variable, value)
    with pytest.raises(LLMConfigurationError) as caught:
        LLMConfig()
    found = Evidence()
    found.error("config error", caught.value)
    found.assert_clean()


PLAIN_KEY = "correct horse battery staple"  # a key that looks like nothing in particular


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("LLM_FALLBACK_STRATEGY", PLAIN_KEY),
        ("OPENAI_BASE_URL", f"http://{PLAIN_KEY}"),
        ("LLM_DAILY_COST_LIMIT", PLAIN_KEY),
    ],
)
@pytest.mark.parametrize("where", ["environment", ".env"])
def test_known_keys_are_redacted_from_configuration_errors(monkeypatch, where, variable, value):
    """Any *_API_KEY value, from the environment or .env, is redacted however it looks."""
    if where == ".env":
        Path(".env").write_text(f"MISTRAL_API_KEY={PLAIN_KEY}\n", encoding="utf-8")
    else:
        monkeypatch.setenv("MISTRAL_API_KEY", PLAIN_KEY)
    monkeypatch.setenv(variable, value)
    with pytest.raises(LLMConfigurationError) as caught:
        LLMConfig()
    assert variable in str(caught.value) and "[redacted]" in str(caught.value)
    assert PLAIN_KEY not in str(caught.value) and PLAIN_KEY not in repr(caught.value)


def test_provider_key_is_redacted_from_its_own_errors():
    with pytest.raises(LLMConfigurationError) as caught:
        ProviderConfig(name="custom", default_model="m", api_key=PLAIN_KEY, priority=PLAIN_KEY)
    assert "custom.priority" in str(caught.value) and PLAIN_KEY not in str(caught.value)
    provider = ProviderConfig(name="custom", default_model="m", api_key=PLAIN_KEY)
    with pytest.raises(LLMConfigurationError) as caught:
        provider.timeout = PLAIN_KEY
    assert "custom.timeout" in str(caught.value) and PLAIN_KEY not in str(caught.value)
