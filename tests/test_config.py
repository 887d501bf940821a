"""Configuration from the environment, .env and code; errors that name the variable."""

from __future__ import annotations

import pytest

from leadfactory.llm import LLMConfigurationError
from leadfactory.llm.config import FallbackStrategy, LLMConfig, ProviderConfig

from .conftest import SENTINEL_KEY


def test_defaults_follow_the_guide(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "k1")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "k2")
    monkeypatch.delenv("OLLAMA_HOST")
    config = LLMConfig.from_environment()
    assert config.fallback_strategy is FallbackStrategy.SMART_FALLBACK
    assert config.max_fallback_attempts == 3
    assert config.default_temperature == 0.7
    assert config.default_max_tokens == 1000
    assert config.enable_caching and config.log_requests
    costs = config.cost_config
    assert (costs.max_cost_per_request, costs.daily_cost_limit, costs.monthly_cost_limit) == (
        1.0,
        50.0,
        1000.0,
    )
    assert costs.cost_tracking_enabled and costs.budget_alert_threshold == 0.8
    openai, anthropic, ollama = (config.providers[n] for n in ("openai", "anthropic", "ollama"))
    # Not the guide's example models (retired: a 404 on every call) but ones the vendors
    # serve, priced by LiteLLM's map; the guide's values still work when set.
    assert (openai.default_model, anthropic.default_model, ollama.default_model) == (
        "gpt-5.4-mini",
        "claude-haiku-4-5",
        "llama3:8b",
    )
    assert (openai.priority, anthropic.priority, ollama.priority) == (2, 3, 1)
    assert (openai.cost_per_1k_tokens, anthropic.cost_per_1k_tokens) == (0.03, 0.015)
    assert ollama.cost_per_1k_tokens == 0.0
    assert (openai.timeout, anthropic.timeout, ollama.timeout) == (30, 30, 60)
    assert (openai.max_retries, anthropic.max_retries, ollama.max_retries) == (3, 3, 2)
    assert (openai.retry_delay, anthropic.retry_delay, ollama.retry_delay) == (1.0, 1.0, 0.5)
    assert ollama.base_url == "http://localhost:11434"
    assert openai.rate_limit_rpm is None and openai.rate_limit_tpm is None


def test_every_guide_variable_is_read(monkeypatch):
    values = {
        "OPENAI_API_KEY": "k",
        "OPENAI_MODEL": "gpt-4o",
        "OPENAI_ENABLED": "false",
        "OPENAI_TIMEOUT": "12",
        "OPENAI_RATE_LIMIT_RPM": "60",
        "OPENAI_RATE_LIMIT_TPM": "60000",
        "OPENAI_COST_PER_1K_TOKENS": "0.02",
        "OPENAI_PRIORITY": "5",
        "OPENAI_MAX_RETRIES": "1",
        "OPENAI_RETRY_DELAY": "0.25",
        "OPENAI_BASE_URL": "http://proxy:8080/v1",
        "ANTHROPIC_API_KEY": "k",
        "ANTHROPIC_MODEL": "claude-3-haiku",
        "ANTHROPIC_RATE_LIMIT_RPM": "50",
        "ANTHROPIC_RATE_LIMIT_TPM": "100000",
        "ANTHROPIC_BASE_URL": "http://a:1",
        "OLLAMA_HOST": "http://gpu-box:11434",
        "OLLAMA_MODEL": "mistral",
        "OLLAMA_ENABLED": "true",
        "OLLAMA_COST_PER_1K_TOKENS": "0.0",
        "OLLAMA_PRIORITY": "1",
        "LLM_FALLBACK_STRATEGY": "cost_optimized",
        "LLM_MAX_FALLBACK_ATTEMPTS": "2",
        "LLM_DEFAULT_TEMPERATURE": "0.3",
        "LLM_DEFAULT_MAX_TOKENS": "200",
        "LLM_ENABLE_CACHING": "false",
        "LLM_LOG_REQUESTS": "false",
        "LLM_MAX_COST_PER_REQUEST": "0.5",
        "LLM_DAILY_COST_LIMIT": "5",
        "LLM_MONTHLY_COST_LIMIT": "100",
        "LLM_COST_TRACKING": "false",
        "LLM_BUDGET_ALERT_THRESHOLD": "0.9",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    config = LLMConfig()
    openai = config.providers["openai"]
    assert (openai.default_model, openai.enabled, openai.timeout) == ("gpt-4o", False, 12)
    assert (openai.rate_limit_rpm, openai.rate_limit_tpm, openai.priority) == (60, 60000, 5)
    assert (openai.cost_per_1k_tokens, openai.max_retries, openai.retry_delay) == (0.02, 1, 0.25)
    assert openai.base_url == "http://proxy:8080/v1"
    anthropic = config.providers["anthropic"]
    assert anthropic.default_model == "claude-3-haiku" and anthropic.base_url == "http://a:1"
    assert (anthropic.rate_limit_rpm, anthropic.rate_limit_tpm) == (50, 100000)
    assert config.providers["ollama"].base_url == "http://gpu-box:11434"
    assert config.providers["ollama"].default_model == "mistral"
    assert config.fallback_strategy is FallbackStrategy.COST_OPTIMIZED
    assert (config.max_fallback_attempts, config.default_temperature) == (2, 0.3)
    assert config.default_max_tokens == 200
    assert not config.enable_caching and not config.log_requests
    costs = config.cost_config
    assert (costs.max_cost_per_request, costs.daily_cost_limit, costs.monthly_cost_limit) == (
        0.5,
        5,
        100,
    )
    assert not costs.cost_tracking_enabled and costs.budget_alert_threshold == 0.9


def test_providers_without_keys_are_not_configured():
    config = LLMConfig()
    assert list(config.providers) == ["ollama"]


def test_dotenv_file_is_read(tmp_path, monkeypatch):
    (tmp_path / ".env").write_text("OPENAI_API_KEY=from-dotenv\nLLM_MAX_FALLBACK_ATTEMPTS=4\n")
    config = LLMConfig()
    assert config.providers["openai"].secret_key() == "from-dotenv"
    assert config.max_fallback_attempts == 4


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("OPENAI_TIMEOUT", "abc", "a number"),
        ("LLM_FALLBACK_STRATEGY", "bogus", "smart_fallback, cost_optimized"),
        ("LLM_MAX_FALLBACK_ATTEMPTS", "0", "greater than 0"),
        ("LLM_COST_TRACKING", "maybe", "true or false"),
        ("ANTHROPIC_MAX_RETRIES", "-1", "greater than or equal to 0"),
        ("OLLAMA_HOST", "ftp://x", "http://"),
        ("LLM_DEFAULT_TEMPERATURE", "9", "less than or equal to 2"),
        ("LLM_BUDGET_ALERT_THRESHOLD", "1.5", "less than or equal to 1"),
    ],
)
def test_malformed_values_name_the_variable(monkeypatch, variable, value, expected):
    monkeypatch.setenv("OPENAI_API_KEY", SENTINEL_KEY)
    monkeypatch.setenv("ANTHROPIC_API_KEY", SENTINEL_KEY)
    monkeypatch.setenv(variable, value)
    with pytest.raises(LLMConfigurationError) as caught:
        LLMConfig()
    message = str(caught.value)
    assert variable in message and expected in message
    assert SENTINEL_KEY not in message
    assert isinstance(caught.value, ValueError)


def test_ollama_host_without_scheme_is_accepted(monkeypatch):
    monkeypatch.setenv("OLLAMA_HOST", "localhost:11434")
    assert LLMConfig().providers["ollama"].base_url == "http://localhost:11434"


def test_programmatic_configuration_validates_assignments():
    config = LLMConfig()
    config.fallback_strategy = FallbackStrategy.COST_OPTIMIZED
    config.fallback_strategy = "round_robin"
    assert config.fallback_strategy is FallbackStrategy.ROUND_ROBIN
    with pytest.raises(LLMConfigurationError, match="fallback_strategy"):
        config.fallback_strategy = "nope"
    with pytest.raises(LLMConfigurationError, match="max_fallback_attempts"):
        config.max_fallback_attempts = 0


def test_provider_config_errors_name_the_field_and_hide_the_key():
    with pytest.raises(LLMConfigurationError) as caught:
        ProviderConfig(name="custom", api_key=SENTINEL_KEY, default_model="m", timeout="soon")
    assert "custom.timeout" in str(caught.value) and SENTINEL_KEY not in str(caught.value)
    provider = ProviderConfig(name="custom", api_key=SENTINEL_KEY, default_model="m")
    assert SENTINEL_KEY not in repr(provider) and SENTINEL_KEY not in str(provider)
    assert SENTINEL_KEY not in provider.model_dump_json()
    with pytest.raises(LLMConfigurationError, match="unknown_field"):
        ProviderConfig(name="custom", default_model="m", unknown_field=1)


def test_validate_lists_readable_problems(monkeypatch):
    config = LLMConfig(providers={})
    assert any("No provider is enabled" in p for p in config.validate())
    config.providers["free"] = ProviderConfig(name="free", api_key="k", default_model="m")
    config.providers["nokey"] = ProviderConfig(
        name="nokey", default_model="m", cost_per_1k_tokens=0.01
    )
    config.cost_config.daily_cost_limit = 2000
    problems = "\n".join(config.validate())
    assert "free: model 'm' has no price" in problems
    assert "set ProviderConfig.model_prices['m'] or ProviderConfig.cost_per_1k_tokens" in problems
    assert "nokey: no API key" in problems
    assert "LLM_DAILY_COST_LIMIT (2000" in problems
    assert LLMConfig(providers={"ollama": LLMConfig().providers["ollama"]}).validate() == []


def test_estimate_request_cost():
    config = LLMConfig()
    config.providers["custom"] = ProviderConfig(
        name="custom", api_key="k", default_model="m", cost_per_1k_tokens=0.01
    )
    assert config.estimate_request_cost(1500, "custom") == pytest.approx(0.015)
    assert config.estimate_request_cost(1500, "ollama") == 0.0
    with pytest.raises(LLMConfigurationError, match="Unknown provider 'nope'"):
        config.estimate_request_cost(10, "nope")


# -- "no limit" from the environment -----------------------------------------------------------

LIMITS = {
    "LLM_MAX_COST_PER_REQUEST": lambda c: c.cost_config.max_cost_per_request,
    "LLM_DAILY_COST_LIMIT": lambda c: c.cost_config.daily_cost_limit,
    "LLM_MONTHLY_COST_LIMIT": lambda c: c.cost_config.monthly_cost_limit,
    "LLM_BUDGET_ALERT_THRESHOLD": lambda c: c.cost_config.budget_alert_threshold,
    "LLM_CACHE_TTL": lambda c: c.cache_ttl,
}


@pytest.mark.parametrize("word", ["none", "off", "None", " OFF "])
@pytest.mark.parametrize("variable", sorted(LIMITS))
def test_none_or_off_in_the_environment_means_no_limit(monkeypatch, variable, word):
    monkeypatch.setenv(variable, word)
    assert LIMITS[variable](LLMConfig()) is None


def test_no_limit_words_work_in_code_and_nowhere_else(monkeypatch):
    config = LLMConfig()
    config.cost_config.daily_cost_limit = "off"
    assert config.cost_config.daily_cost_limit is None
    for variable, value in [("LLM_DAILY_COST_LIMIT", ""), ("LLM_MAX_FALLBACK_ATTEMPTS", "none")]:
        with monkeypatch.context() as patch:
            patch.setenv(variable, value)  # empty is a mistake, not "no limit"
            with pytest.raises(LLMConfigurationError, match=variable):
                LLMConfig()


# -- base URLs -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["http://", "http:///v1", "https://:8080/v1", "http://not a url", "http://h:99999"]
)
def test_a_url_needs_a_host_and_the_error_shows_a_valid_one(monkeypatch, url):
    monkeypatch.setenv("OPENAI_API_KEY", "k")
    monkeypatch.setenv("OPENAI_BASE_URL", url)
    with pytest.raises(LLMConfigurationError) as caught:
        LLMConfig()
    assert "OPENAI_BASE_URL" in str(caught.value)
    assert "https://api.example.com/v1" in str(caught.value)  # what a valid one looks like
    with pytest.raises(LLMConfigurationError, match="custom.base_url"):
        ProviderConfig(name="custom", default_model="m", base_url=url)


@pytest.mark.parametrize(
    "url", ["http://localhost:11434/", "https://api.example.com/v1", "http://[::1]:8000/v1"]
)
def test_valid_urls_are_kept(url):
    provider = ProviderConfig(name="custom", default_model="m", base_url=url)
    assert provider.base_url == url.rstrip("/")


# -- unknown fields and hints --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typo", "guess"), [("apikey", "api_key"), ("token", "api_key"), ("timout", "timeout")]
)
def test_unknown_field_suggests_the_valid_one_without_its_value(typo, guess):
    with pytest.raises(LLMConfigurationError) as caught:
        ProviderConfig(name="custom", default_model="m", **{typo: "value-12345"})
    message = str(caught.value)
    assert typo in message and f"did you mean {guess!r}" in message
    assert "valid fields: name, enabled, api_key" in message
    assert "value-12345" not in message


def test_validate_suggests_only_settings_that_are_read():
    """A custom provider has no variables: validate() must not invent GROQ_API_KEY."""
    config = LLMConfig(providers={})
    config.providers["groq"] = ProviderConfig(name="groq", default_model="groq/llama-3.1-8b")
    config.providers["lan"] = ProviderConfig(name="lan", default_model="ollama_chat/llama3")
    config.providers["openai"] = ProviderConfig(
        name="openai", default_model="gpt-4o", api_key="k", cost_per_1k_tokens=0
    )
    problems = "\n".join(config.validate())
    assert "groq: no API key (set ProviderConfig.api_key)" in problems
    assert "lan: no host configured (set ProviderConfig.base_url)" in problems
    assert "GROQ_" not in problems and "LAN_" not in problems
    assert "set OPENAI_COST_PER_1K_TOKENS or ProviderConfig.cost_per_1k_tokens" in problems
    ollama = ProviderConfig(name="ollama", default_model="llama3")
    assert ollama.missing_requirement() == (
        "no host configured (set OLLAMA_HOST or ProviderConfig.base_url)"
    )
