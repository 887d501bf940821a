"""LiteLLM's bundled model map, read as a file: prices, limits and features per model.

LiteLLM ships ``model_prices_and_context_window_backup.json`` inside its package. It is
found with :func:`importlib.util.find_spec`, which locates a package without importing
it (``import litellm`` costs seconds), read once per process and never fetched from
the network. Without LiteLLM or the file, every lookup finds nothing: callers treat
that as "unknown".
"""

from __future__ import annotations

import functools
import importlib.util
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .log import log_event

__all__ = ["MAP_FILE", "bundled_map", "map_entry", "map_path"]

MAP_FILE = "model_prices_and_context_window_backup.json"
"""The map LiteLLM bundles (it reads this copy when LITELLM_LOCAL_MODEL_COST_MAP=True)."""

_MAP_PREFIX = {"ollama": "ollama"}
"""Built-in providers whose models the map lists with a prefix (``ollama/llama3``);
OpenAI's and Anthropic's are listed under their bare names."""


def map_path() -> Path | None:
    """Where the installed LiteLLM keeps its bundled map, or None without one."""
    try:
        spec = importlib.util.find_spec("litellm")
    except (ImportError, ValueError):
        return None
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / MAP_FILE
        if path.is_file():
            return path
    return None


@functools.cache
def bundled_map() -> Mapping[str, Mapping[str, Any]]:
    """The whole map, model name to facts; empty when LiteLLM or its file is missing."""
    path = map_path()
    if path is None:
        log_event(logging.WARNING, f"LiteLLM's {MAP_FILE} was not found: no model prices")
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        log_event(logging.WARNING, f"LiteLLM's model map {path} is unreadable: {error}")
        return {}
    if not isinstance(data, dict):
        return {}
    return {
        name: entry
        for name, entry in data.items()
        if isinstance(entry, dict) and name != "sample_spec"
    }


def map_entry(provider: str, model: str) -> Mapping[str, Any] | None:
    """The map's entry for ``model`` as called on ``provider``, or None when unknown.

    Tried in order: the name as written (``gpt-4o``, ``groq/llama-3.1-8b-instant``);
    without a route prefix when the entry belongs to that route (``anthropic/claude-x``
    is the map's ``claude-x``); with the built-in provider's prefix (``ollama/llama3``).
    """
    entries = bundled_map()
    found = entries.get(model)
    if found is not None:
        return found
    prefix, sep, bare = model.partition("/")
    if sep:
        found = entries.get(bare)
        if found is not None and found.get("litellm_provider") == prefix:
            return found
        return None
    prefix = _MAP_PREFIX.get(provider)
    return entries.get(f"{prefix}/{model}") if prefix else None
