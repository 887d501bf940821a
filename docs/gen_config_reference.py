"""Regenerate the configuration tables in docs/configuration.md from the settings classes.

The environment variables' tables sit between ``<!-- BEGIN CONFIG TABLE -->`` and
``<!-- END CONFIG TABLE -->``, the ProviderConfig fields' table between
``<!-- BEGIN PROVIDERCONFIG TABLE -->`` and ``<!-- END PROVIDERCONFIG TABLE -->``;
everything outside the markers is left alone. Variable names, defaults, accepted
values and meanings (each field's ``description``) come from the settings classes:
``LLMConfig`` and ``CostConfig`` in ``leadfactory/llm/config.py``, ``ProviderConfig`` in
``leadfactory/llm/provider_config.py``,
``ProviderEnvironment`` and ``BUILTIN_DEFAULTS`` in ``leadfactory/llm/settings_env.py``.

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

from leadfactory.llm.config import CostConfig, LLMConfig, ProviderConfig
from leadfactory.llm.settings_env import (
    BUILTIN_DEFAULTS,
    BUILTIN_PROVIDERS,
    NoneWord,
    ProviderEnvironment,
)

BEGIN = "<!-- BEGIN CONFIG TABLE -->"
END = "<!-- END CONFIG TABLE -->"
PROVIDER_BEGIN = "<!-- BEGIN PROVIDERCONFIG TABLE -->"
PROVIDER_END = "<!-- END PROVIDERCONFIG TABLE -->"
TARGET = Path(__file__).with_name("configuration.md")

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

# Which provider reads which variable: Ollama has OLLAMA_HOST instead of a base URL
# (see _provider_from_environment in provider_env.py). tests/test_docs.py checks this.
PROVIDER_ONLY: dict[str, tuple[str, ...]] = {
    "host": ("ollama",),
    "base_url": ("openai", "anthropic"),
}
# ProviderEnvironment field -> the ProviderConfig field it sets.
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


def show_type(annotation: Any, metadata: list[Any], *, url: bool = False) -> str:
    """What a variable accepts, from its annotation and constraints."""
    none_word = NoneWord in metadata  # "none" / "off" read as None: its description says what
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
    if optional and none_word:
        text += ", or `none`"
    return text


def describe(*fields: FieldInfo | None) -> str:
    """The first description among ``fields``, on one line."""
    for field in fields:
        if field is not None and field.description:
            return " ".join(field.description.split())
    return ""


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
            accepts = show_type(field.annotation, field.metadata)
            variable = f"`{_variable(cls, name, field)}`"
            lines.append(_row([variable, default, accepts, describe(field)]))
    return lines


def provider_table() -> list[str]:
    titles = [_PROVIDER_TITLES.get(p, p) for p in BUILTIN_PROVIDERS]
    lines = [
        _row(["Setting", *titles, "Accepts", "Meaning"]),
        "|---|" + "---|" * len(titles) + "---|---|",
    ]
    for name, field in ProviderEnvironment.model_fields.items():
        target = PROVIDER_FIELD.get(name, name)
        config_field = ProviderConfig.model_fields.get(target)
        cells = []
        for provider in BUILTIN_PROVIDERS:
            if provider not in PROVIDER_ONLY.get(name, (provider,)):
                cells.append("—")
                continue
            note = PROVIDER_DEFAULT_NOTES.get((provider, name))
            if note is None:
                value = BUILTIN_DEFAULTS[provider].get(target, PydanticUndefined)
                if value is PydanticUndefined and config_field is not None:
                    value = config_field.default
                note = show_default(value)
            cells.append(f"`{provider.upper()}_{name.upper()}`<br>{note}")
        # Every provider variable is optional: unset means the default in its cell.
        accepts = show_type(field.annotation, field.metadata, url=name in PROVIDER_ONLY)
        setting = f"`{target}`" if target == name else f"`{target}` ({name})"
        lines.append(_row([setting, *cells, accepts, describe(field, config_field)]))
    return lines


def provider_config_table() -> list[str]:
    lines = [_row(["Field", "Default", "Accepts", "Meaning"]), "|---|---|---|---|"]
    for name, field in ProviderConfig.model_fields.items():
        if field.default_factory is not None:
            default = f"`{field.default_factory()!r}`"
        elif field.is_required():
            default = "required"
        else:
            default = show_default(field.default)
        accepts = show_type(field.annotation, field.metadata, url=name == "base_url")
        if type(None) in typing.get_args(field.annotation):
            accepts += ", or `None`"
        if name == "extra_params":
            accepts = "dict"
        lines.append(_row([f"`{name}`", default, accepts, describe(field)]))
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
        "<!-- Generated by docs/gen_config_reference.py from leadfactory/llm/config.py,"
        " provider_config.py and settings_env.py; edit there, then rerun it. -->",
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
