"""What the environment says, and configuration errors that name the variable.

``config.py`` builds the settings; this module holds what it reads them with: the
built-in providers' ``<PROVIDER>_*`` variables and defaults, the checks of URLs and of
``none``/``off`` for "no limit", the texts that describe each setting (the tables in
docs/configuration.md are generated from them), and :func:`configuration_errors`,
which turns pydantic's errors into an :class:`LLMConfigurationError` that names the
variable or field and never shows an API key.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import (
    BeforeValidator,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    field_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from .dburl import url_secrets
from .exceptions import LLMConfigurationError
from .redact import redact

# -- values ---------------------------------------------------------------------------------

NONE_WORDS = frozenset({"none", "off"})
"""Words that set an optional limit to None ("no limit") from the environment."""


def none_word(value: Any) -> Any:
    """None for ``none`` or ``off`` (any case), else ``value`` unchanged."""
    if isinstance(value, str) and value.strip().lower() in NONE_WORDS:
        return None
    return value


NoneWord = BeforeValidator(none_word)
OptionalLimit = Annotated[NonNegativeFloat | None, NoneWord]

_URL_EXAMPLE = "like https://api.example.com/v1 or http://localhost:11434"


def normalise_url(value: str | None) -> str | None:
    """``value`` without surrounding spaces and trailing slashes; None when blank.

    Raises ValueError unless it is an http(s) URL with a host and no spaces.
    """
    if value is None or not value.strip():
        return None
    value = value.strip().rstrip("/")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - reading it checks the port
    except ValueError:
        raise ValueError(f"is not a URL; give one {_URL_EXAMPLE}") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"must start with http:// or https://; give a URL {_URL_EXAMPLE}")
    if not parts.hostname or any(c.isspace() for c in value):
        raise ValueError(f"needs a host name and no spaces; give a URL {_URL_EXAMPLE}")
    return value


# -- what each setting means (docs/gen_config_reference.py tabulates these) ----------------

PROVIDER_HELP: dict[str, str] = {
    "api_key": "API key. OpenAI and Anthropic are configured only when it is set.",
    "model": "Model used when a call does not name one (`ProviderConfig.default_model`).",
    "enabled": "Set to false to never call this provider.",
    "base_url": "API endpoint, for a proxy, a gateway or a compatible server. OpenAI's "
    "includes the version path (`/v1`); Anthropic's does not.",
    "host": "Ollama server root; `localhost:11434` without a scheme is accepted.",
    "timeout": "Seconds one attempt may take in all: connecting, sending and reading the "
    "whole answer (a deadline, not a limit per read).",
    "first_token_timeout": "Seconds a streamed call may take to its first text or tool "
    "call; past it the attempt is a timeout, retried or failed over (unset: `timeout`).",
    "stream_idle_timeout": "Seconds a stream may go without a byte once its first text "
    "arrived; past it the stream is interrupted (unset: `timeout`).",
    "rate_limit_rpm": "Requests per minute this client sends at most; unset means no limit.",
    "rate_limit_tpm": "Tokens per minute (estimated, then corrected to the usage "
    "reported); unset means no limit.",
    "cost_per_1k_tokens": "Price in USD per 1,000 tokens, prompt and completion alike, "
    "for every model of the provider; 0 means free. It prices calls only when set (the "
    "defaults shown are the guide's examples): unset, each model's price comes from "
    "LiteLLM's map.",
    "input_cost_per_1k_tokens": "Price in USD per 1,000 input tokens of the provider's "
    "model; set with the output price, it wins over `COST_PER_1K_TOKENS` and LiteLLM's "
    "price map.",
    "output_cost_per_1k_tokens": "Price in USD per 1,000 output tokens (reasoning "
    "included) of the provider's model; set with the input price.",
    "context_window": "Tokens the provider's model can take in (prompt); replaces "
    "LiteLLM's map's figure, for a model it lacks or a server configured otherwise (an "
    "Ollama `num_ctx`). Requests that do not fit skip the provider.",
    "max_output_tokens": "Tokens the provider's model can write at most; a larger "
    "`max_tokens` is lowered to it for this provider.",
    "priority": "Higher is preferred by `smart_fallback` and `quality_optimized`.",
    "max_retries": "Extra attempts on the same provider after a connection error, "
    "timeout, 5xx or unreadable answer (2 means up to 3 requests).",
    "retry_delay": "Base delay in seconds of the exponential backoff between those "
    "attempts (with jitter, capped at 30 s).",
}
"""Meaning of each provider setting, shared by the variables and ProviderConfig."""


def _help(name: str) -> Any:
    return Field(default=None, description=PROVIDER_HELP[name])


# -- the built-in providers' variables ----------------------------------------------------

BUILTIN_DEFAULTS: dict[str, dict[str, Any]] = {
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
        "default_model": "gpt-5.4-mini",
        "priority": 2,
        "cost_per_1k_tokens": 0.03,
        "timeout": 30.0,
        "max_retries": 3,
        "retry_delay": 1.0,
    },
    "anthropic": {
        "default_model": "claude-haiku-4-5",
        "priority": 3,
        "cost_per_1k_tokens": 0.015,
        "timeout": 30.0,
        "max_retries": 3,
        "retry_delay": 1.0,
    },
}
BUILTIN_PROVIDERS: tuple[str, ...] = tuple(BUILTIN_DEFAULTS)
"""The declared order of the built-in providers (round_robin and fail_fast use it)."""


class ProviderEnvironment(BaseSettings):
    """``<PREFIX>_*`` variables of one built-in provider; unset values stay None."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", allow_inf_nan=False)

    api_key: str | None = _help("api_key")
    model: str | None = _help("model")
    enabled: bool | None = _help("enabled")
    base_url: str | None = _help("base_url")
    host: str | None = _help("host")
    timeout: PositiveFloat | None = _help("timeout")
    first_token_timeout: PositiveFloat | None = _help("first_token_timeout")
    stream_idle_timeout: PositiveFloat | None = _help("stream_idle_timeout")
    rate_limit_rpm: PositiveInt | None = _help("rate_limit_rpm")
    rate_limit_tpm: PositiveInt | None = _help("rate_limit_tpm")
    cost_per_1k_tokens: NonNegativeFloat | None = _help("cost_per_1k_tokens")
    input_cost_per_1k_tokens: NonNegativeFloat | None = _help("input_cost_per_1k_tokens")
    output_cost_per_1k_tokens: NonNegativeFloat | None = _help("output_cost_per_1k_tokens")
    context_window: PositiveInt | None = _help("context_window")
    max_output_tokens: PositiveInt | None = _help("max_output_tokens")
    priority: int | None = _help("priority")
    max_retries: NonNegativeInt | None = _help("max_retries")
    retry_delay: NonNegativeFloat | None = _help("retry_delay")

    @field_validator("host", mode="before")
    @classmethod
    def _default_scheme(cls, value: Any) -> Any:
        # Ollama's own clients accept OLLAMA_HOST=localhost:11434; so do we.
        if isinstance(value, str) and value.strip() and "://" not in value:
            return f"http://{value.strip()}"
        return value

    _check_urls = field_validator("base_url", "host")(classmethod(lambda cls, v: normalise_url(v)))


# -- errors that name the variable and never show a key --------------------------------------

_SECRET_NAME = re.compile(r"key|token|secret|password|auth", re.IGNORECASE)
_SECRET_VALUE = re.compile(
    r"^(?:sk|rk|pk|gsk|xai|hf|key|api)[-_]|^AIza|^(?=.*[0-9])(?=.*[A-Za-z])[\w.-]{20,}$",
    re.IGNORECASE,
)


def known_secrets(*values: Any) -> list[str]:
    """API keys a message must not show: ``*_API_KEY`` in the environment and ``.env``,
    and ``values`` (strings or SecretStr)."""
    found = [value for name, value in os.environ.items() if name.upper().endswith("_API_KEY")]
    if os.path.isfile(".env"):
        from dotenv import dotenv_values

        dotenv = dotenv_values(".env")
        found += [v for k, v in dotenv.items() if k.upper().endswith("_API_KEY") and v]
    for value in values:
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        if isinstance(value, str):
            found.append(value)
    return found


def _hidden(where: str, value: Any) -> bool:
    """True when the input must not be shown: a secret's field, a secret-looking value,
    or a container (it may hold one)."""
    if isinstance(value, (Mapping, list, tuple, set)) or _SECRET_NAME.search(where):
        return True
    if isinstance(value, str) and "://" in value and ("@" in value or url_secrets(value)):
        return True
    return isinstance(value, str) and _SECRET_VALUE.search(value.strip()) is not None


def _unknown_field(where: str, field: str, valid: Iterable[str]) -> str:
    valid = list(valid)
    if _SECRET_NAME.search(field) and "api_key" in valid:
        guess = ["api_key"]
    else:
        guess = difflib.get_close_matches(field, valid, n=1)
    hint = f"did you mean {guess[0]!r}? " if guess else ""
    return f"{where} is not a known field ({hint}valid fields: {', '.join(valid)})"


def _expected(error: Mapping[str, Any]) -> str:
    kind = error.get("type", "")
    if kind == "enum":
        return str(error.get("ctx", {}).get("expected", "")).replace("'", "")
    return {"float": "a number", "int": "a whole number", "bool": "true or false"}.get(
        kind.split("_")[0], ""
    )


def location(error: Mapping[str, Any]) -> str:
    """The dotted path of one pydantic error."""
    return ".".join(str(part) for part in error.get("loc", ())) or "value"


def describe(
    exc: ValidationError,
    *,
    env_prefix: str | None = None,
    field_prefix: str = "",
    fields: Iterable[str] = (),
    secrets: Iterable[str] = (),
) -> str:
    """One readable message for ``exc``, naming each variable (``env_prefix``) or field."""
    lines = []
    for error in exc.errors():
        where = location(error)
        if env_prefix is not None:
            where = where if where.isupper() else f"{env_prefix}{where.upper()}"
        else:
            where = f"{field_prefix}{where}"
        if error.get("type") == "extra_forbidden":  # never echo it: it may be a misspelt key
            lines.append(_unknown_field(where, location(error), fields))
            continue
        value = error.get("input")
        shown = "" if _hidden(where, value) else f"={value!r}"
        expected = _expected(error)
        hint = f" (expected {expected})" if expected else ""
        lines.append(f"{where}{shown} is not valid: {error.get('msg')}{hint}")
    return redact("Invalid configuration: " + "; ".join(lines), secrets)


@contextmanager
def configuration_errors(
    *,
    env_prefix: str | None = None,
    field_prefix: str = "",
    fields: Iterable[str] = (),
    secrets: Iterable[Any] = (),
) -> Iterator[None]:
    """Turn a pydantic ValidationError raised inside into an LLMConfigurationError.

    ``env_prefix`` names environment variables (``OPENAI_`` + ``TIMEOUT``), else
    ``field_prefix`` is put before field paths. ``fields`` are the valid field names,
    suggested when an unknown one is given; ``secrets`` are keys to redact besides
    those the environment holds.
    """
    try:
        yield
    except ValidationError as exc:
        message = describe(
            exc,
            env_prefix=env_prefix,
            field_prefix=field_prefix,
            fields=fields,
            secrets=known_secrets(*secrets),
        )
        raise LLMConfigurationError(
            message, metadata={"fields": [location(e) for e in exc.errors()]}
        ) from None
