"""Configuration: providers, strategy, costs, cache and ledger settings.

Everything can be set from the environment (or a ``.env`` file in the working
directory) or in code. ``LLMConfig()`` reads the environment exactly as
``LLMConfig.from_environment()`` does. A malformed value raises
:class:`~leadfactory.llm.exceptions.LLMConfigurationError` naming the variable or
field, never showing an API key; ``none`` or ``off`` switches an optional limit off.
What is read from the environment, and how errors are worded, is in ``settings_env``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    BeforeValidator,
    Field,
    NonNegativeFloat,
    PositiveFloat,
    PositiveInt,
    SecretStr,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from .dburl import check_postgres_setting
from .exceptions import LLMConfigurationError
from .pricing import PriceSource, price_for, price_setting, worst_case_cost
from .provider_config import FallbackStrategy, ProviderConfig
from .provider_env import providers_from_environment
from .redis_link import check_redis_url
from .settings_env import (
    BUILTIN_PROVIDERS,
    NoneWord,
    OptionalLimit,
    configuration_errors,
)


def _file_path(value: Any) -> Any:
    """An empty path is a mistake (``LLM_LEDGER_PATH=`` would open the current folder)."""
    if isinstance(value, str | Path) and not str(value).strip():
        raise ValueError("is empty: unset it to use the default file, or give a file path")
    return value


FilePath = Annotated[Path | None, BeforeValidator(_file_path)]

__all__ = [
    "BUILTIN_PROVIDERS",
    "CostConfig",
    "FallbackStrategy",
    "LLMConfig",
    "ProviderConfig",
]


# ---------------------------------------------------------------------------
# General settings

RedisURL = Annotated[SecretStr | None, BeforeValidator(check_redis_url)]
"""A redis:// URL; its password never shows in a repr or an error."""
PostgresURL = Annotated[SecretStr | None, BeforeValidator(check_postgres_setting)]
"""A postgresql:// URL; its password never shows in a repr or an error."""

_SETTINGS = SettingsConfigDict(
    env_prefix="LLM_",
    env_file=".env",
    extra="ignore",
    validate_assignment=True,
    populate_by_name=True,
    allow_inf_nan=False,
)


class CostConfig(BaseSettings):
    """Budget limits, in US dollars, from ``LLM_*`` variables (``none`` or ``off``: no limit)."""

    model_config = SettingsConfigDict(**_SETTINGS)

    max_cost_per_request: OptionalLimit = Field(
        default=1.0,
        description="Largest estimated cost, in USD, of one request to one provider. "
        "Providers whose estimate is higher are skipped. `none`: no limit.",
    )
    daily_cost_limit: OptionalLimit = Field(
        default=50.0,
        description="Spend allowed per UTC day, in USD, across providers. Paid providers "
        "are skipped once a request would pass it. `none`: no limit.",
    )
    monthly_cost_limit: OptionalLimit = Field(
        default=1000.0,
        description="Spend allowed per UTC calendar month, in USD. `none`: no limit.",
    )
    cost_tracking_enabled: bool = Field(
        default=True,
        validation_alias=AliasChoices("LLM_COST_TRACKING", "cost_tracking_enabled"),
        description="Write the ledger. When false nothing is recorded and only the "
        "per-request cap is enforced.",
    )
    budget_alert_threshold: Annotated[float | None, NoneWord] = Field(
        default=0.8,
        gt=0,
        le=1,
        description="Fraction of the daily or monthly limit at which a budget alert fires "
        "(once per period). `none`: no alerts.",
    )

    def __init__(self, **data: Any) -> None:
        with configuration_errors(env_prefix="LLM_"):
            super().__init__(**data)

    def __setattr__(self, name: str, value: Any) -> None:
        with configuration_errors(field_prefix="cost_config."):
            super().__setattr__(name, value)


class LLMConfig(BaseSettings):
    """Everything the client needs; ``LLMConfig()`` reads the environment and ``.env``."""

    model_config = SettingsConfigDict(**_SETTINGS)

    fallback_strategy: FallbackStrategy = Field(
        default=FallbackStrategy.SMART_FALLBACK,
        description="Order in which providers are tried; see strategies.md.",
    )
    max_fallback_attempts: PositiveInt = Field(
        default=3,
        description="Most providers one request may actually call. Skipped providers "
        "(disabled, cooling down, rate limited, over budget) do not count.",
    )
    context_margin: float = Field(
        default=0.1,
        ge=0,
        le=1,
        description="Safety margin on the prompt's token estimate, as a fraction of it: a "
        "model is skipped unless its context window holds the estimate, this margin and "
        "`max_tokens` (see strategies.md).",
    )
    default_temperature: float = Field(
        default=0.7, ge=0, le=2, description="Temperature used when a call gives none."
    )
    default_max_tokens: PositiveInt = Field(
        default=1000,
        description="Completion limit used when a call gives no `max_tokens`; also the "
        "allowance the cost estimate adds to the prompt.",
    )
    enable_caching: bool = Field(
        default=True, description="Serve repeated identical requests from the response cache."
    )
    log_requests: bool = Field(
        default=True,
        description="Emit one log line per provider attempt and cache hit (shown only if "
        "your application enables the `leadfactory.llm` logger).",
    )
    cache_ttl: Annotated[PositiveFloat | None, NoneWord] = Field(
        default=86400.0,
        description="Seconds a cached response stays valid. `none`: never expire.",
    )
    cache_max_entries: PositiveInt = Field(
        default=10_000,
        description="Soft bound on the number of responses in the cache file; the least "
        "recently used go first.",
    )
    cache_path: FilePath = Field(default=None, description="SQLite file of the response cache.")
    ledger_path: FilePath = Field(default=None, description="SQLite file of the cost ledger.")
    ledger_url: PostgresURL = Field(
        default=None,
        description="PostgreSQL database that holds the cost ledger instead of the SQLite "
        "file (`postgresql://user@host:5432/db`), so hosts share one budget (see "
        "[scaling.md](scaling.md)). Needs the `[postgres]` extra. Its password is never "
        "shown.",
    )
    ledger_settlement: Literal["inline", "background"] | None = Field(
        default=None,
        description="When a call's ledger settlement (its real cost) is written: `inline`, "
        "before the answer is returned; `background`, by the ledger's writer thread right "
        "after, without the caller waiting (the reservation is still committed before "
        "the call, so the budgets count the call at its worst case until then). Default: "
        "`background` for a PostgreSQL ledger, `inline` for the SQLite file.",
    )
    ledger_stale_after: PositiveFloat = Field(
        default=600.0,
        description="Seconds after which a reservation still pending (its worker died "
        "mid-call) stops counting against the budgets.",
    )
    rate_limit_max_wait: NonNegativeFloat = Field(
        default=30.0,
        description="When every available provider is rate limited, the call sleeps until "
        "one frees up, for at most this many seconds in total; past it the call raises "
        "`LLMRateLimitError`. `0` never waits.",
    )
    max_retry_after: PositiveFloat = Field(
        default=600.0,
        description="Longest pause, in seconds, a provider's `Retry-After` may impose on "
        "it; a longer one is cut to this, and the attempt in `attempts` says so.",
    )
    cooldown_failures: PositiveInt = Field(
        default=3,
        description="Consecutive outage or credential failures (retries included) after "
        "which a provider cools down.",
    )
    cooldown_seconds: NonNegativeFloat = Field(
        default=30.0,
        description="First cooldown, in seconds; each failed probe doubles it. `0` turns "
        "cooldowns off.",
    )
    cooldown_max_seconds: NonNegativeFloat = Field(
        default=600.0, description="Longest cooldown, in seconds."
    )
    rate_limit_window: PositiveFloat = Field(
        default=60.0,
        description="Length in seconds of the RPM/TPM windows (per minute: 60; shorter "
        "only for tests).",
    )
    redis_url: RedisURL = Field(
        default=None,
        description="Redis server (`redis://host:6379/0`) holding the RPM/TPM windows, "
        "Retry-After pauses and cooldowns that every process and host using it shares. "
        "Unset: they are per process.",
    )
    cache_url: RedisURL = Field(
        default=None,
        description="Redis server for the response cache, shared by every host (may be "
        "the same as `LLM_REDIS_URL`). Unset: the SQLite file `LLM_CACHE_PATH`.",
    )
    redis_key_prefix: str = Field(
        default="leadfactory-llm:",
        min_length=1,
        description="Start of every key this library writes in Redis.",
    )
    cache_flight_timeout: PositiveFloat = Field(
        default=60.0,
        description="With `LLM_CACHE_URL`, the longest a host waits for another host "
        "already asking the same question before asking it itself, in seconds.",
    )
    cost_config: CostConfig = Field(default_factory=CostConfig, exclude=True)
    providers: dict[str, ProviderConfig] = Field(
        default_factory=providers_from_environment, exclude=True
    )

    def __init__(self, **data: Any) -> None:
        with configuration_errors(env_prefix="LLM_"):
            super().__init__(**data)

    def __setattr__(self, name: str, value: Any) -> None:
        with configuration_errors():
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
        """Providers the current strategy would try, before health and budget are known.

        ``cost_optimized`` ranks them here by a nominal request (1,000 tokens in, 1,000
        out, each provider's own model); a real request is ranked by its own size.
        """
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

    def estimate_request_cost(
        self, tokens: int, provider: str, *, max_tokens: int | None = None
    ) -> float:
        """The most a request of ``tokens`` tokens (prompt plus completion allowance, as
        ``client.estimate_tokens`` counts them) may cost on ``provider``'s model.

        With ``max_tokens`` (the completion allowance inside ``tokens``), the prompt is
        priced at the model's input price and ``max_tokens`` at its output price, as a
        reservation is; without it every token is priced at the higher of the two. With a
        blended ``cost_per_1k_tokens`` both are that price: ``tokens / 1000 * price``.
        """
        if provider not in self.providers:
            known = ", ".join(self.providers) or "none"
            raise LLMConfigurationError(
                f"Unknown provider {provider!r}; configured providers: {known}"
            )
        if tokens < 0:
            raise LLMConfigurationError(f"tokens must be >= 0, got {tokens}")
        if max_tokens is not None and not 0 <= max_tokens <= tokens:
            raise LLMConfigurationError(
                f"max_tokens must be between 0 and tokens ({tokens}), got {max_tokens}"
            )
        price = price_for(self.providers[provider])
        if max_tokens is None:
            return tokens * max(price.input, price.output)
        return worst_case_cost(price, tokens - max_tokens, max_tokens)

    def budgets_on(self) -> bool:
        """Cost tracking is on and some limit (per request, daily, monthly) is set: then a
        paid model with no price is refused (see ``pricing.unpriced_refusal``)."""
        costs = self.cost_config
        limits = (costs.max_cost_per_request, costs.daily_cost_limit, costs.monthly_cost_limit)
        return costs.cost_tracking_enabled and any(limit is not None for limit in limits)

    def settles_in_background(self) -> bool:
        """Whether the ledger's settlements are written in the background
        (``ledger_settlement``; unset: yes for PostgreSQL, no for the SQLite file)."""
        if self.ledger_settlement is None:
            return self.ledger_url is not None
        return self.ledger_settlement == "background"

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
            price = price_for(provider)
            if price.source is PriceSource.UNPRICED and self.budgets_on():
                problems.append(
                    f"{name}: model {provider.default_model!r} has no price, so calls to it"
                    f" are refused while a budget is on; set {price_setting(provider)}"
                )
            elif price.is_free and not provider.is_local:
                problems.append(
                    f"{name}: cost_per_1k_tokens is 0, so budgets never limit it; "
                    f"set {provider._setting_hint('cost_per_1k_tokens')}"
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
