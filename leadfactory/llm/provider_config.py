"""The two configuration types every other module needs: a provider, and a strategy.

:class:`ProviderConfig` describes one provider the client may call; a malformed field
raises :class:`~leadfactory.llm.exceptions.LLMConfigurationError` naming it, never
showing the API key. Both are re-exported by :mod:`leadfactory.llm.config`, where the
settings read from the environment live.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    SecretStr,
    field_serializer,
    field_validator,
)

from .redact import redact
from .settings_env import BUILTIN_PROVIDERS, PROVIDER_HELP, configuration_errors, normalise_url

__all__ = ["FallbackStrategy", "ModelFacts", "ModelPrice", "ProviderConfig"]


class FallbackStrategy(StrEnum):
    """The order in which providers are tried (see ``strategies.py``)."""

    SMART_FALLBACK = "smart_fallback"
    COST_OPTIMIZED = "cost_optimized"
    QUALITY_OPTIMIZED = "quality_optimized"
    ROUND_ROBIN = "round_robin"
    FAIL_FAST = "fail_fast"


class ModelPrice(BaseModel):
    """A model's price in USD per token, as LiteLLM's price map writes it.

    Cache prices may be left out: those tokens are then priced as input.
    ``ModelPrice(input_cost_per_token=2.5e-6, output_cost_per_token=1e-5)`` is
    $2.50 per million input tokens and $10 per million output tokens.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    input_cost_per_token: NonNegativeFloat
    output_cost_per_token: NonNegativeFloat
    cache_read_cost_per_token: NonNegativeFloat | None = None
    cache_write_cost_per_token: NonNegativeFloat | None = None


class ModelFacts(BaseModel):
    """What a model can take and do; None means unknown (and never blocks a call).

    Given in ``ProviderConfig.model_facts``, each fact set here replaces the one from
    LiteLLM's model map (for local and custom models the map does not know).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_input_tokens: PositiveInt | None = None
    max_output_tokens: PositiveInt | None = None
    supports_tools: bool | None = None
    supports_json_schema: bool | None = None
    supports_vision: bool | None = None


class ProviderConfig(BaseModel):
    """One provider the client may call.

    ``default_model`` may carry a LiteLLM provider prefix (``groq/llama-3.1-8b``,
    ``openai/my-model``); without one, a custom provider is treated as
    OpenAI-compatible and reached at ``base_url``. ``api_key`` is kept as a secret:
    it never appears in a repr, a log line or an error.
    """

    model_config = ConfigDict(validate_assignment=True, extra="forbid", allow_inf_nan=False)

    name: str = Field(
        min_length=1,
        description="The provider's name: its key in `config.providers`, in "
        "`response['provider']`, in the ledger and in `model=\"name/...\"`.",
    )
    enabled: bool = Field(default=True, description=PROVIDER_HELP["enabled"])
    api_key: SecretStr | None = Field(
        default=None,
        description="API key, kept secret (never shown in a repr, log or error). Required "
        "unless the provider is an Ollama server; give a placeholder for servers without auth.",
    )
    base_url: str | None = Field(
        default=None, description="Endpoint. Without it LiteLLM uses the vendor's default URL."
    )
    default_model: str = Field(
        min_length=1,
        description="Model used when a call does not name one. May carry a LiteLLM route "
        "prefix (`groq/llama-3.1-8b`); without one the provider is treated as "
        "OpenAI-compatible (`ollama/` or `ollama_chat/` makes it an Ollama server).",
    )
    timeout: PositiveFloat = Field(default=30.0, description=PROVIDER_HELP["timeout"])
    first_token_timeout: PositiveFloat | None = Field(
        default=None, description=PROVIDER_HELP["first_token_timeout"]
    )
    stream_idle_timeout: PositiveFloat | None = Field(
        default=None, description=PROVIDER_HELP["stream_idle_timeout"]
    )
    rate_limit_rpm: PositiveInt | None = Field(
        default=None, description=PROVIDER_HELP["rate_limit_rpm"]
    )
    rate_limit_tpm: PositiveInt | None = Field(
        default=None, description=PROVIDER_HELP["rate_limit_tpm"]
    )
    cost_per_1k_tokens: NonNegativeFloat = Field(
        default=0.0, description=PROVIDER_HELP["cost_per_1k_tokens"]
    )
    model_prices: dict[str, ModelPrice] = Field(
        default_factory=dict,
        description="Prices per model name, in USD per token (`ModelPrice`); they win over "
        "`cost_per_1k_tokens` and LiteLLM's price map for that model.",
    )
    model_facts: dict[str, ModelFacts] = Field(
        default_factory=dict,
        description="Limits and features per model name (`ModelFacts`), for models "
        "LiteLLM's map does not know or describes wrongly.",
    )
    priority: int = Field(default=1, description=PROVIDER_HELP["priority"])
    max_retries: NonNegativeInt = Field(default=3, description=PROVIDER_HELP["max_retries"])
    retry_delay: NonNegativeFloat = Field(default=1.0, description=PROVIDER_HELP["retry_delay"])
    extra_params: dict[str, Any] = Field(
        default_factory=dict,
        description="Extra keyword arguments for every LiteLLM call to this provider "
        "(for example `api_version`).",
    )

    def __init__(self, **data: Any) -> None:
        with configuration_errors(
            field_prefix=f"ProviderConfig {data.get('name', '')!s}.",
            fields=type(self).model_fields,
            secrets=[data.get("api_key")],
        ):
            super().__init__(**data)

    def __setattr__(self, name: str, value: Any) -> None:
        with configuration_errors(
            field_prefix=f"ProviderConfig {self.name}.",
            fields=type(self).model_fields,
            secrets=[self.api_key, value if name == "api_key" else None],
        ):
            super().__setattr__(name, value)

    @field_validator("api_key", mode="before")
    @classmethod
    def _blank_key_is_none(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            return None
        return value

    _check_url = field_validator("base_url")(classmethod(lambda cls, v: normalise_url(v)))

    @property
    def is_free(self) -> bool:
        """True when calls cost nothing (``cost_per_1k_tokens`` is 0)."""
        return self.cost_per_1k_tokens == 0

    @property
    def has_user_blended_price(self) -> bool:
        """True when ``cost_per_1k_tokens`` was set by the user, not left at its default."""
        return "cost_per_1k_tokens" in self.model_fields_set

    @property
    def is_local(self) -> bool:
        """True for an Ollama server, which needs a host but no API key."""
        return self.name == "ollama" or self.default_model.startswith(("ollama/", "ollama_chat/"))

    def secret_key(self) -> str | None:
        """The API key in clear, for the one place that hands it to LiteLLM."""
        return self.api_key.get_secret_value() if self.api_key else None

    @field_serializer("base_url")
    def _public_base_url(self, value: str | None) -> str | None:
        """Dumps show the URL without its password, as they show the key masked."""
        return redact(value, ()) if value else value

    def __repr_args__(self) -> Any:
        """The fields, with a password in ``base_url`` replaced (the key is a SecretStr)."""
        for name, value in super().__repr_args__():
            yield name, redact(value, ()) if isinstance(value, str) else value

    def _setting_hint(self, field: str) -> str:
        """Where to set ``field``: the variable a built-in provider reads, and the field.

        Custom providers have no variables, so only ``ProviderConfig.<field>`` is named.
        """
        if self.name not in BUILTIN_PROVIDERS:
            return f"ProviderConfig.{field}"
        variable = "host" if (self.name, field) == ("ollama", "base_url") else field
        return f"{self.name.upper()}_{variable.upper()} or ProviderConfig.{field}"

    def missing_requirement(self) -> str | None:
        """Why this provider cannot connect, or None when it has what it needs."""
        if self.is_local and not self.base_url:
            return f"no host configured (set {self._setting_hint('base_url')})"
        if not self.is_local and self.api_key is None:
            return f"no API key (set {self._setting_hint('api_key')})"
        return None

    def estimate_cost(self, tokens: int) -> float:
        """Dollars for ``tokens`` tokens at this provider's price."""
        return tokens / 1000.0 * self.cost_per_1k_tokens
