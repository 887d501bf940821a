"""Regenerate the configuration tables in docs/configuration.md from the settings classes.

The environment variables' tables sit between ``<!-- BEGIN CONFIG TABLE -->`` and
``<!-- END CONFIG TABLE -->``, the ProviderConfig fields' table between
``<!-- BEGIN PROVIDERCONFIG TABLE -->`` and ``<!-- END PROVIDERCONFIG TABLE -->``;
everything outside the markers is left alone. Variable names, defaults and accepted
values come from ``LLMConfig``, ``CostConfig``, ``ProviderConfig``,
``_ProviderEnvironment`` and ``_BUILTIN_DEFAULTS`` in ``leadfactory/llm/config.py``. A
field's ``description`` is used when it has one, else the text in ``DESCRIPTIONS`` (and
``PROVIDER_CONFIG_DESCRIPTIONS``) below.

    python docs/gen_config_reference.py          # rewrite the tables in place
    python docs/gen_config_reference.py --check  # exit 1 when the file is out of date

tests/test_docs.py runs the same rendering in memory and fails when the file differs.
"""

from __future__ import annotations

import argparse
import enum
import sys
import types
import typing
from pathlib import Path
from typing import Any

import annotated_types
from pydantic import AliasChoices
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from leadfactory.llm.config import (
    _BUILTIN_DEFAULTS,
    BUILTIN_PROVIDERS,
    CostConfig,
    LLMConfig,
    ProviderConfig,
    _ProviderEnvironment,
)

BEGIN = "<!-- BEGIN CONFIG TABLE -->"
END = "<!-- END CONFIG TABLE -->"
PROVIDER_BEGIN = "<!-- BEGIN PROVIDERCONFIG TABLE -->"
PROVIDER_END = "<!-- END PROVIDERCONFIG TABLE -->"
TARGET = Path(__file__).with_name("configuration.md")

# What each setting means, for fields that carry no ``description=`` in config.py.
# LLMConfig and CostConfig fields are keyed by field name; provider settings by their
# _ProviderEnvironment field name (they describe ProviderConfig's fields of the same
# meaning: ``model`` is ``default_model``, ``host`` is Ollama's ``base_url``).
DESCRIPTIONS: dict[str, str] = {
    # LLMConfig
    "fallback_strategy": "Order in which providers are tried; see strategies.md.",
    "max_fallback_attempts": "Most providers one request may actually call. Skipped "
    "providers (disabled, cooling down, rate limited, over budget) do not count.",
    "default_temperature": "Temperature used when a call gives none.",
    "default_max_tokens": "Completion limit used when a call gives no `max_tokens`; also "
    "the allowance the cost estimate adds to the prompt.",
    "enable_caching": "Serve repeated identical requests from the response cache.",
    "log_requests": "Emit one log line per provider attempt and cache hit (shown only if "
    "your application enables the `leadfactory.llm` logger).",
    "cache_ttl": "Seconds a cached response stays valid.",
    "cache_max_entries": "Soft bound on the number of responses in the cache file; the "
    "least recently used go first.",
    "cache_path": "SQLite file of the response cache.",
    "ledger_path": "SQLite file of the cost ledger.",
    "rate_limit_max_wait": "When every available provider is rate limited, the call sleeps "
    "until one frees up, for at most this many seconds in total; past it the call raises "
    "`LLMRateLimitError`. `0` never waits.",
    "cooldown_failures": "Consecutive outage or credential failures (retries included) "
    "after which a provider cools down.",
    "cooldown_seconds": "First cooldown, in seconds; each failed probe doubles it. `0` turns "
    "cooldowns off.",
    "cooldown_max_seconds": "Longest cooldown, in seconds.",
    # CostConfig
    "max_cost_per_request": "Largest estimated cost, in USD, of one request to one "
    "provider. Providers whose estimate is higher are skipped.",
    "daily_cost_limit": "Spend allowed per UTC day, in USD, across providers. Paid "
    "providers are skipped once a request would pass it.",
    "monthly_cost_limit": "Spend allowed per UTC calendar month, in USD.",
    "cost_tracking_enabled": "Write the ledger. When false nothing is recorded and only "
    "the per-request cap is enforced.",
    "budget_alert_threshold": "Fraction of the daily or monthly limit at which a budget "
    "alert fires (once per period).",
    # Providers (_ProviderEnvironment -> ProviderConfig)
    "api_key": "API key. OpenAI and Anthropic are configured only when it is set.",
    "model": "Model used when a call does not name one (`ProviderConfig.default_model`).",
    "enabled": "Set to false to never call this provider.",
    "base_url": "API endpoint, for a proxy, a gateway or a compatible server. OpenAI's "
    "includes the version path (`/v1`); Anthropic's does not.",
    "host": "Ollama server root; `localhost:11434` without a scheme is accepted.",
    "timeout": "Seconds to wait for a connection and an answer, per attempt.",
    "rate_limit_rpm": "Requests per minute this client sends at most; unset means no limit.",
    "rate_limit_tpm": "Tokens per minute (estimated, then corrected to the usage "
    "reported); unset means no limit.",
    "cost_per_1k_tokens": "Price in USD per 1,000 tokens, prompt and completion alike. "
    "Used for estimates, budgets and `response['cost']`; 0 means free.",
    "priority": "Higher is preferred by `smart_fallback` and `quality_optimized`.",
    "max_retries": "Extra attempts on the same provider after a connection error, "
    "timeout, 5xx or unreadable answer (2 means up to 3 requests).",
    "retry_delay": "Base delay in seconds of the exponential backoff between those "
    "attempts (with jitter, capped at 30 s).",
}

# ProviderConfig fields whose meaning in code differs from the environment variable's.
PROVIDER_CONFIG_DESCRIPTIONS: dict[str, str] = {
    "name": "The provider's name: its key in `config.providers`, in `response['provider']`, "
    'in the ledger and in `model="name/..."`.',
    "api_key": "API key, kept secret (never shown in a repr, log or error). Required unless "
    "the provider is an Ollama server; give a placeholder for servers without auth.",
    "base_url": "Endpoint. Without it LiteLLM uses the vendor's default URL.",
    "default_model": "Model used when a call does not name one. May carry a LiteLLM route "
    "prefix (`groq/llama-3.1-8b`); without one the provider is treated as OpenAI-compatible "
    "(`ollama/` or `ollama_chat/` makes it an Ollama server).",
    "extra_params": "Extra keyword arguments for every LiteLLM call to this provider "
    "(for example `api_version`).",
}

# Defaults that are not a plain value in the settings classes.
DEFAULT_NOTES: dict[str, str] = {
    "cache_ttl": "`86400` (one day)",
    "cache_path": "`$XDG_CACHE_HOME/leadfactory-llm/cache.db`, else "
    "`~/.cache/leadfactory-llm/cache.db`",
    "ledger_path": "`$XDG_DATA_HOME/leadfactory-llm/ledger.db`, else "
    "`~/.local/share/leadfactory-llm/ledger.db` (macOS: `~/Library/Application Support/...`)",
}
PROVIDER_DEFAULT_NOTES: dict[tuple[str, str], str] = {
    ("openai", "base_url"): "`https://api.openai.com/v1`",
    ("anthropic", "base_url"): "`https://api.anthropic.com`",
    ("openai", "api_key"): "unset: provider off",
    ("anthropic", "api_key"): "unset: provider off",
    ("ollama", "api_key"): "unset (not needed)",
}

# What None means, for settings that accept it (only in code: the environment cannot say it).
NONE_MEANS: dict[str, str] = {
    "cache_ttl": "never expire",
    "budget_alert_threshold": "no alerts",
    "cache_path": "",
    "ledger_path": "",
}

# Which provider reads which variable: Ollama has OLLAMA_HOST instead of a base URL
# (see _provider_from_environment in config.py). tests/test_docs.py checks this.
PROVIDER_ONLY: dict[str, tuple[str, ...]] = {
    "host": ("ollama",),
    "base_url": ("openai", "anthropic"),
}
# _ProviderEnvironment field -> the ProviderConfig field it sets.
PROVIDER_FIELD: dict[str, str] = {"model": "default_model", "host": "base_url"}

_PROVIDER_TITLES = {"openai": "OpenAI", "anthropic": "Anthropic", "ollama": "Ollama"}


# -- values and types as text -------------------------------------------------------------


def _number(value: float) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) >= 10:
        return str(int(value))  # 86400, not 86400.0; small amounts keep their point: 1.0
    return str(value)


def show_default(value: Any) -> str:
    """A default as it would be written in the environment."""
    if value is None or value is PydanticUndefined:
        return "unset"
    if isinstance(value, enum.Enum):
        return f"`{value.value}`"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, int | float):
        return f"`{_number(value)}`"
    return f"`{value}`"


def _bounds(metadata: list[Any], *, integer: bool = False) -> str:
    parts = []
    for item in metadata:
        if isinstance(item, annotated_types.Gt) and integer:
            parts.append(f"≥ {item.gt + 1}")
        elif isinstance(item, annotated_types.Gt):
            parts.append(f"> {_number(item.gt)}")
        elif isinstance(item, annotated_types.Ge):
            parts.append(f"≥ {_number(item.ge)}")
        elif isinstance(item, annotated_types.Lt):
            parts.append(f"< {_number(item.lt)}")
        elif isinstance(item, annotated_types.Le):
            parts.append(f"≤ {_number(item.le)}")
    return " and ".join(parts)


def show_type(
    annotation: Any, metadata: list[Any], *, url: bool = False, none_means: str = "no limit"
) -> str:
    """What a variable accepts, from its annotation and constraints."""
    metadata = list(metadata)
    origin = typing.get_origin(annotation)
    optional = False
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        optional = len(args) < len(typing.get_args(annotation))
        annotation = args[0]
    if typing.get_origin(annotation) is typing.Annotated:
        annotation, *extra = typing.get_args(annotation)
        metadata += extra
    bounds = _bounds(metadata, integer=annotation is int)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        text = ", ".join(f"`{member.value}`" for member in annotation)
    elif annotation is bool:
        text = "`true` / `false`"
    elif annotation is int:
        text = "integer" + (f" {bounds}" if bounds else "")
    elif annotation is float:
        text = "number" + (f" {bounds}" if bounds else "")
    elif annotation is Path:
        text = "file path"
    elif annotation is str and url:
        text = "URL"
    else:
        text = "text"
    if optional and none_means:
        text += f"; `None` in code: {none_means}"
    return text


def describe(name: str, *fields: FieldInfo | None) -> str:
    for field in fields:
        if field is not None and field.description:
            return " ".join(field.description.split())
    return DESCRIPTIONS.get(name, "")


def _variable(cls: type, name: str, field: FieldInfo) -> str:
    alias = field.validation_alias
    if isinstance(alias, AliasChoices):
        for choice in alias.choices:
            if isinstance(choice, str) and choice.isupper():
                return choice
    if isinstance(alias, str):
        return alias.upper()
    return f"{cls.model_config.get('env_prefix', '')}{name}".upper()


# -- tables --------------------------------------------------------------------------------


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def settings_table(*classes: type) -> list[str]:
    lines = [_row(["Variable", "Default", "Accepts", "Meaning"]), "|---|---|---|---|"]
    for cls in classes:
        for name, field in cls.model_fields.items():
            if field.exclude:  # providers and cost_config: built by their own classes
                continue
            default = DEFAULT_NOTES.get(name) or show_default(field.default)
            none_means = NONE_MEANS.get(name, "no limit")
            accepts = show_type(field.annotation, field.metadata, none_means=none_means)
            variable = f"`{_variable(cls, name, field)}`"
            lines.append(_row([variable, default, accepts, describe(name, field)]))
    return lines


def provider_table() -> list[str]:
    titles = [_PROVIDER_TITLES.get(p, p) for p in BUILTIN_PROVIDERS]
    lines = [
        _row(["Setting", *titles, "Accepts", "Meaning"]),
        "|---|" + "---|" * len(titles) + "---|---|",
    ]
    for name, field in _ProviderEnvironment.model_fields.items():
        target = PROVIDER_FIELD.get(name, name)
        config_field = ProviderConfig.model_fields.get(target)
        cells = []
        for provider in BUILTIN_PROVIDERS:
            if provider not in PROVIDER_ONLY.get(name, (provider,)):
                cells.append("—")
                continue
            note = PROVIDER_DEFAULT_NOTES.get((provider, name))
            if note is None:
                value = _BUILTIN_DEFAULTS[provider].get(target, PydanticUndefined)
                if value is PydanticUndefined and config_field is not None:
                    value = config_field.default
                note = show_default(value)
            cells.append(f"`{provider.upper()}_{name.upper()}`<br>{note}")
        # Every provider variable is optional: unset means the default in its cell.
        accepts = show_type(
            field.annotation, field.metadata, url=name in PROVIDER_ONLY, none_means=""
        )
        setting = f"`{target}`" if target == name else f"`{target}` ({name})"
        lines.append(_row([setting, *cells, accepts, describe(name, field, config_field)]))
    return lines


def provider_config_table() -> list[str]:
    lines = [_row(["Field", "Default", "Accepts", "Meaning"]), "|---|---|---|---|"]
    environment_name = {target: name for name, target in PROVIDER_FIELD.items() if name != "host"}
    for name, field in ProviderConfig.model_fields.items():
        if field.default_factory is not None:
            default = f"`{field.default_factory()!r}`"
        elif field.is_required():
            default = "required"
        else:
            default = show_default(field.default)
        accepts = show_type(field.annotation, field.metadata, url=name == "base_url", none_means="")
        if type(None) in typing.get_args(field.annotation):
            accepts += ", or `None`"
        if name == "extra_params":
            accepts = "dict"
        env_name = environment_name.get(name, name)
        meaning = (
            (field.description and " ".join(field.description.split()))
            or PROVIDER_CONFIG_DESCRIPTIONS.get(name)
            or describe(env_name, _ProviderEnvironment.model_fields.get(env_name))
        )
        lines.append(_row([f"`{name}`", default, accepts, meaning]))
    return lines


def render_provider_config() -> str:
    """The text that belongs between the ProviderConfig markers."""
    lines = [
        "<!-- Generated by docs/gen_config_reference.py from ProviderConfig. -->",
        "",
        *provider_config_table(),
    ]
    return "\n".join(lines)


def render() -> str:
    """The text that belongs between the markers (markers excluded)."""
    lines = [
        "<!-- Generated by docs/gen_config_reference.py from leadfactory/llm/config.py;"
        " edit there, then rerun it. -->",
        "",
        "### General settings and budgets",
        "",
        *settings_table(LLMConfig, CostConfig),
        "",
        "### Built-in providers",
        "",
        "Each cell gives the variable and its default for that provider.",
        "",
        *provider_table(),
    ]
    return "\n".join(lines)


def _replace(document: str, begin: str, end: str, text: str) -> str:
    start, stop = document.find(begin), document.find(end)
    if start < 0 or stop < start:
        raise ValueError(f"the markers {begin} and {end} are missing or out of order")
    return document[: start + len(begin)] + "\n" + text + "\n" + document[stop:]


def rewrite(document: str) -> str:
    """``document`` with the text between each pair of markers rendered again."""
    document = _replace(document, BEGIN, END, render())
    return _replace(document, PROVIDER_BEGIN, PROVIDER_END, render_provider_config())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is stale")
    parser.add_argument("--file", type=Path, default=TARGET, help="the Markdown file")
    args = parser.parse_args(argv)
    current = args.file.read_text(encoding="utf-8")
    updated = rewrite(current)
    if args.check:
        if updated != current:
            print(f"{args.file} is out of date: run python {Path(__file__).as_posix()}")
            return 1
        print(f"{args.file} is up to date")
        return 0
    if updated != current:
        args.file.write_text(updated, encoding="utf-8")
        print(f"rewrote the configuration tables in {args.file}")
    else:
        print(f"{args.file} already up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
