"""What a model can take and do: context window, output limit, tools, JSON schema, images.

The facts come from LiteLLM's bundled model map (the same lookup as the prices, see
:mod:`leadfactory.llm.model_map`); each fact set in ``ProviderConfig.model_facts``
for the model replaces the map's. A fact nobody knows is None, which means "do not
skip": a missing fact never blocks a call.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from .model_map import map_entry
from .provider_config import ModelFacts, ProviderConfig

__all__ = ["ModelFacts", "facts_for", "map_facts"]

# ModelFacts field -> the map's key
_MAP_KEYS = {
    "max_input_tokens": "max_input_tokens",
    "max_output_tokens": "max_output_tokens",
    "supports_tools": "supports_function_calling",
    "supports_json_schema": "supports_response_schema",
    "supports_vision": "supports_vision",
}


def facts_for(provider: ProviderConfig, model: str | None = None) -> ModelFacts:
    """The facts of ``model`` (default: the provider's) on ``provider``."""
    model = model or provider.default_model
    return _merged(provider.name, model, provider.model_facts.get(model))


@functools.lru_cache(maxsize=1024)
def _merged(name: str, model: str, override: ModelFacts | None) -> ModelFacts:
    facts = map_facts(map_entry(name, model))
    if override is None:
        return facts
    return facts.model_copy(update=override.model_dump(exclude_none=True))


def map_facts(entry: Mapping[str, Any] | None) -> ModelFacts:
    """The facts a map entry states; a missing or malformed value is unknown (None)."""
    if entry is None:
        return ModelFacts()
    known: dict[str, Any] = {}
    for field, key in _MAP_KEYS.items():
        value = entry.get(key)
        if field.startswith("max_"):
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                known[field] = value
        elif isinstance(value, bool):
            known[field] = value
    return ModelFacts(**known)
