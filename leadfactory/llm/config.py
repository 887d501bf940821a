"""Configuration: providers, strategy, costs, cache and ledger settings.

Everything can be set from the environment (or a ``.env`` file in the working
directory) or in code. ``LLMConfig()`` reads the environment exactly as
``LLMConfig.from_environment()`` does. A malformed value raises
:class:`~leadfactory.llm.exceptions.LLMConfigurationError` naming the variable.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    SecretStr,
    ValidationError,
    field_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from .exceptions import LLMConfigurationError

__all__ = [
    "BUILTIN_PROVIDERS",
    "CostConfig",
    "FallbackStrategy",
    "LLMConfig",
    "ProviderConfig",
]


class FallbackStrategy(StrEnum):
    """The order in which providers are tried (see ``strategies.py``)."""

    SMART_FALLBACK = "smart_fallback"
    COST_OPTIMIZED = "cost_optimized"
    QUALITY_OPTIMIZED = "quality_optimized"
    ROUND_ROBIN = "round_robin"
    FAIL_FAST = "fail_fast"


STRATEGY_NAMES = ", ".join(s.value for s in FallbackStrategy)

# What a value of each type should look like, for error messages.
_EXPECTED = {
    "float": "a number",
    "int": "a whole number",
    "bool": "true or false",
    "enum": f"one of {STRATEGY_NAMES}",
}


class ProviderConfig(BaseModel):
    """One provider the client may call.

    ``default_model`` may carry a LiteLLM provider prefix (``groq/llama-3.1-8b``,
    ``openai/my-model``); without one, a custom provider is treated as
    OpenAI-compatible and reached at ``base_url``. ``api_key`` is kept as a secret:
    it never appears in a repr, a log line or an error.
    """

    model_config = ConfigDict(validate_assignment=True, extra="forbid", allow_inf_nan=False)

    name: str = Field(min_length=1)
    enabled: bool = True
    api_key: SecretStr | None = None
    base_url: str | None = None
    default_model: str = Field(min_length=1)
    timeout: PositiveFloat = 30.0
    rate_limit_rpm: PositiveInt | None = None
    rate_limit_tpm: PositiveInt | None = None
    cost_per_1k_tokens: NonNegativeFloat = 0.0
    priority: int = 1
    max_retries: NonNegativeInt = 3
    retry_delay: NonNegativeFloat = 1.0
    extra_params: dict[str, Any] = Field(default_factory=dict)
    """Extra keyword arguments passed to LiteLLM on every call (e.g. ``api_version``)."""

    def __init__(self, **data: Any) -> None:
        with _configuration_errors(field_prefix=f"ProviderConfig {data.get('name', '')!s}."):
            super().__init__(**data)

    def __setattr__(self, name: str, value: Any) -> None:
        with _configuration_errors(field_prefix=f"ProviderConfig {self.name}."):
            super().__setattr__(name, value)

    @field_validator("api_key", mode="before")
    @classmethod
    def _blank_key_is_none(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            return None
        return value

    _check_url = field_validator("base_url")(classmethod(lambda cls, v: _normalise_url(v)))

    @property
    def is_free(self) -> bool:
        """True when calls cost nothing (``cost_per_1k_tokens`` is 0)."""
        return self.cost_per_1k_tokens == 0

    @property
    def is_local(self) -> bool:
        """True for an Ollama server, which needs a host but no API key."""
        return self.name == "ollama" or self.default_model.startswith(("ollama/", "ollama_chat/"))

    def secret_key(self) -> str | None:
        """The API key in clear, for the one place that hands it to LiteLLM."""
        return self.api_key.get_secret_value() if self.api_key else None

    def missing_requirement(self) -> str | None:
        """Why this provider cannot connect, or None when it has what it needs."""
        if self.is_local:
            return None if self.base_url else "no host configured (set OLLAMA_HOST)"
        if self.api_key is None:
            return f"no API key (set {self.name.upper()}_API_KEY or ProviderConfig.api_key)"
        return None

    def estimate_cost(self, tokens: int) -> float:
        """Dollars for ``tokens`` tokens at this provider's price."""
        return tokens / 1000.0 * self.cost_per_1k_tokens


def _normalise_url(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    value = value.strip().rstrip("/")
    if not value.startswith(("http://", "https://")):
        raise ValueError(f"must start with http:// or https://, got {value!r}")
    return value


# ---------------------------------------------------------------------------
# Built-in providers and their environment variables


_BUILTIN_DEFAULTS: dict[str, dict[str, Any]] = {
    "ollama": {
        "default_model": "llama3:8b",
        "base_url": "http://localhost:11434",
        "priority": 1,
        "cost_per_1k_tokens": 0.0,
        "timeout": 60.0,
        "max_retries": 2,
        "retry_delay": 0.5,
    },
    "openai": {
        "default_model": "gpt-4",
        "priority": 2,
        "cost_per_1k_tokens": 0.03,
        "timeout": 30.0,
        "max_retries": 3,
        "retry_delay": 1.0,
    },
    "anthropic": {
        "default_model": "claude-3-sonnet-20240229",
        "priority": 3,
        "cost_per_1k_tokens": 0.015,
        "timeout": 30.0,
        "max_retries": 3,
        "retry_delay": 1.0,
    },
}
BUILTIN_PROVIDERS: tuple[str, ...] = tuple(_BUILTIN_DEFAULTS)
"""The declared order of the built-in providers (round_robin and fail_fast use it)."""


class _ProviderEnvironment(BaseSettings):
    """``<PREFIX>_*`` variables of one built-in provider; unset values stay None."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", allow_inf_nan=False)

    api_key: str | None = None
    model: str | None = None
    enabled: bool | None = None
    base_url: str | None = None
    host: str | None = None
    timeout: PositiveFloat | None = None
    rate_limit_rpm: PositiveInt | None = None
    rate_limit_tpm: PositiveInt | None = None
    cost_per_1k_tokens: NonNegativeFloat | None = None
    priority: int | None = None
    max_retries: NonNegativeInt | None = None
    retry_delay: NonNegativeFloat | None = None

    @field_validator("host", mode="before")
    @classmethod
    def _default_scheme(cls, value: Any) -> Any:
        # Ollama's own clients accept OLLAMA_HOST=localhost:11434; so do we.
        if isinstance(value, str) and value.strip() and "://" not in value:
            return f"http://{value.strip()}"
        return value

    _check_urls = field_validator("base_url", "host")(classmethod(lambda cls, v: _normalise_url(v)))


def _provider_from_environment(name: str) -> ProviderConfig | None:
    prefix = f"{name.upper()}_"
    with _configuration_errors(env_prefix=prefix):
        env = _ProviderEnvironment(_env_prefix=prefix)
    if name != "ollama" and not env.api_key:
        return None  # openai and anthropic are configured only when their key is set
    values = dict(_BUILTIN_DEFAULTS[name])
    found = env.model_dump(exclude_none=True)
    found.pop("host" if name != "ollama" else "base_url", None)
    if "host" in found:
        found["base_url"] = found.pop("host")
    if "model" in found:
        found["default_model"] = found.pop("model")
    values.update(found)
    with _configuration_errors(env_prefix=prefix):
        return ProviderConfig(name=name, **values)


def providers_from_environment() -> dict[str, ProviderConfig]:
    """The built-in providers configured by the environment, in declared order."""
    providers = {}
    for name in BUILTIN_PROVIDERS:
        provider = _provider_from_environment(name)
        if provider is not None:
            providers[name] = provider
    return providers


# ---------------------------------------------------------------------------
# General settings


class CostConfig(BaseSettings):
    """Budget limits, in US dollars, from ``LLM_*`` variables."""

    model_config = SettingsConfigDict(
        env_prefix="LLM_",
        env_file=".env",
        extra="ignore",
        validate_assignment=True,
        populate_by_name=True,
        allow_inf_nan=False,
    )

    max_cost_per_request: NonNegativeFloat | None = 1.0
    daily_cost_limit: NonNegativeFloat | None = 50.0
    monthly_cost_limit: NonNegativeFloat | None = 1000.0
    cost_tracking_enabled: bool = Field(
        default=True,
        validation_alias=AliasChoices("LLM_COST_TRACKING", "cost_tracking_enabled"),
    )
    budget_alert_threshold: float | None = Field(default=0.8, gt=0, le=1)

    def __init__(self, **data: Any) -> None:
        with _configuration_errors(env_prefix="LLM_"):
            super().__init__(**data)

    def __setattr__(self, name: str, value: Any) -> None:
        with _configuration_errors(field_prefix="cost_config."):
            super().__setattr__(name, value)


class LLMConfig(BaseSettings):
    """Everything the client needs; ``LLMConfig()`` reads the environment and ``.env``."""

    model_config = SettingsConfigDict(
        env_prefix="LLM_",
        env_file=".env",
        extra="ignore",
        validate_assignment=True,
        populate_by_name=True,
        allow_inf_nan=False,
    )

    fallback_strategy: FallbackStrategy = FallbackStrategy.SMART_FALLBACK
    max_fallback_attempts: PositiveInt = 3
    default_temperature: float = Field(default=0.7, ge=0, le=2)
    default_max_tokens: PositiveInt = 1000
    enable_caching: bool = True
    log_requests: bool = True
    cache_ttl: PositiveFloat | None = 86400.0
    cache_max_entries: PositiveInt = 10_000
    cache_path: Path | None = None
    ledger_path: Path | None = None
    rate_limit_max_wait: NonNegativeFloat = 30.0
    cooldown_failures: PositiveInt = 3
    cooldown_seconds: NonNegativeFloat = 30.0
    cooldown_max_seconds: NonNegativeFloat = 600.0
    cost_config: CostConfig = Field(default_factory=CostConfig, exclude=True)
    providers: dict[str, ProviderConfig] = Field(
        default_factory=providers_from_environment, exclude=True
    )

    def __init__(self, **data: Any) -> None:
        with _configuration_errors(env_prefix="LLM_"):
            super().__init__(**data)

    def __setattr__(self, name: str, value: Any) -> None:
        with _configuration_errors(field_prefix=""):
            super().__setattr__(name, value)

    @classmethod
    def settings_customise_sources(
        cls, settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings
    ):
        # providers and cost_config are built by their own classes, never parsed as JSON.
        return (
            init_settings,
            _without(env_settings, "providers", "cost_config"),
            _without(dotenv_settings, "providers", "cost_config"),
        )

    @classmethod
    def from_environment(cls) -> LLMConfig:
        """Read every ``LLM_*`` and provider variable from the environment and ``.env``."""
        return cls()

    # -- queries used by the client and by people ---------------------------

    def get_enabled_providers(self) -> dict[str, ProviderConfig]:
        """Enabled providers in declared order."""
        return {name: p for name, p in self.providers.items() if p.enabled}

    def declared_order(self) -> list[str]:
        """Built-in providers first (ollama, openai, anthropic), then custom ones as added."""
        builtin = [name for name in BUILTIN_PROVIDERS if name in self.providers]
        return builtin + [name for name in self.providers if name not in BUILTIN_PROVIDERS]

    def get_provider_order(self) -> list[str]:
        """Providers the current strategy would try, before health and budget are known."""
        from .strategies import plan_fallback

        ready = {
            name: p
            for name, p in self.providers.items()
            if p.enabled and p.missing_requirement() is None
        }
        plan = plan_fallback(
            ready, self.fallback_strategy, self.declared_order(), self.max_fallback_attempts
        )
        return list(plan.order[: plan.max_tries])

    def estimate_request_cost(self, tokens: int, provider: str) -> float:
        """Estimated dollars for ``tokens`` tokens on ``provider``."""
        if provider not in self.providers:
            known = ", ".join(self.providers) or "none"
            raise LLMConfigurationError(
                f"Unknown provider {provider!r}; configured providers: {known}"
            )
        if tokens < 0:
            raise LLMConfigurationError(f"tokens must be >= 0, got {tokens}")
        return self.providers[provider].estimate_cost(tokens)

    def validate(self) -> list[str]:  # type: ignore[override]
        """Readable problems with this configuration; an empty list means it is usable."""
        problems: list[str] = []
        enabled = self.get_enabled_providers()
        if not enabled:
            problems.append(
                "No provider is enabled: set OPENAI_API_KEY or ANTHROPIC_API_KEY, or run Ollama"
            )
        for name, provider in self.providers.items():
            if name != provider.name:
                problems.append(f"providers[{name!r}] has name {provider.name!r}; use one name")
            if not provider.enabled:
                continue
            missing = provider.missing_requirement()
            if missing:
                problems.append(f"{name}: {missing}")
            if provider.is_free and not provider.is_local:
                problems.append(
                    f"{name}: cost_per_1k_tokens is 0, so budgets never limit it; "
                    f"set {name.upper()}_COST_PER_1K_TOKENS or ProviderConfig.cost_per_1k_tokens"
                )
        costs = self.cost_config
        daily, monthly = costs.daily_cost_limit, costs.monthly_cost_limit
        if daily is not None and monthly is not None and daily > monthly:
            problems.append(
                f"LLM_DAILY_COST_LIMIT ({daily}) is above LLM_MONTHLY_COST_LIMIT ({monthly})"
            )
        per_request = costs.max_cost_per_request
        if per_request is not None and daily is not None and per_request > daily:
            problems.append(
                f"LLM_MAX_COST_PER_REQUEST ({per_request}) is above LLM_DAILY_COST_LIMIT ({daily})"
            )
        if self.max_fallback_attempts < len(enabled) and self.fallback_strategy is not (
            FallbackStrategy.FAIL_FAST
        ):
            problems.append(
                f"LLM_MAX_FALLBACK_ATTEMPTS is {self.max_fallback_attempts} but "
                f"{len(enabled)} providers are enabled; the last ones are never tried"
            )
        return problems


def _without(source: Any, *fields: str) -> Any:
    def read() -> dict[str, Any]:
        values = source()
        for field in fields:
            values.pop(field, None)
        return values

    return read


# ---------------------------------------------------------------------------
# Turning pydantic's errors into messages that name the variable


@contextmanager
def _configuration_errors(
    *, env_prefix: str | None = None, field_prefix: str | None = None
) -> Iterator[None]:
    try:
        yield
    except ValidationError as exc:
        raise LLMConfigurationError(
            _describe(exc, env_prefix=env_prefix, field_prefix=field_prefix),
            metadata={"fields": [_location(e) for e in exc.errors()]},
        ) from None


def _location(error: Mapping[str, Any]) -> str:
    return ".".join(str(part) for part in error.get("loc", ())) or "value"


def _describe(exc: ValidationError, *, env_prefix: str | None, field_prefix: str | None) -> str:
    lines = []
    for error in exc.errors():
        where = _location(error)
        if env_prefix is not None:
            where = where if where.isupper() else f"{env_prefix}{where.upper()}"
        else:
            where = f"{field_prefix}{where}"
        value = error.get("input")
        shown = "" if "api_key" in where.lower() or isinstance(value, dict) else f"={value!r}"
        expected = _EXPECTED.get(error.get("type", "").split("_")[0], "")
        hint = f" (expected {expected})" if expected else ""
        lines.append(f"{where}{shown} is not valid: {error.get('msg')}{hint}")
    return "Invalid configuration: " + "; ".join(lines)
