"""What ``leadfactory-llm config check`` says about prices: each enabled provider's model,
its four prices and where they come from, and the models LiteLLM's price map does not
know. Pure: reads the configuration and the bundled map, never LiteLLM itself."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .model_map import map_entry
from .pricing import PriceSource, price_for, price_setting
from .provider_config import ProviderConfig

__all__ = ["PER", "price_rows", "price_warnings"]

PER = 1_000_000
"""The prices are shown in USD per this many tokens (per 1M, as vendors quote them)."""

_SOURCES = {
    PriceSource.USER_MODEL: "your model price",
    PriceSource.USER_BLENDED: "your COST_PER_1K_TOKENS",
    PriceSource.LITELLM_MAP: "LiteLLM's map",
    PriceSource.DEFAULT: "the local provider's 0",
    PriceSource.UNPRICED: "nothing",
}


def _per_million(value: float | None) -> float | None:
    return None if value is None else round(value * PER, 9)


def price_rows(providers: Mapping[str, ProviderConfig]) -> list[dict[str, Any]]:
    """One row per enabled provider: model, input, output, cache read and cache write
    in USD per 1M tokens (None: unknown, cache tokens then priced as input; or no price
    at all), and the source (a ``PriceSource`` value)."""
    rows = []
    for name, provider in providers.items():
        if not provider.enabled:
            continue
        price = price_for(provider)
        priced = price.source is not PriceSource.UNPRICED
        rows.append(
            {
                "provider": name,
                "model": provider.default_model,
                "input": _per_million(price.input) if priced else None,
                "output": _per_million(price.output) if priced else None,
                "cache_read": _per_million(price.cache_read),
                "cache_write": _per_million(price.cache_write),
                "source": price.source.value,
            }
        )
    return rows


def price_warnings(providers: Mapping[str, ProviderConfig]) -> list[str]:
    """A line per enabled paid provider whose model LiteLLM's price map does not know."""
    warnings = []
    for name, provider in providers.items():
        if not provider.enabled or provider.is_local:
            continue
        model = provider.default_model
        if map_entry(name, model) is not None:
            continue
        price = price_for(provider)
        if price.source is PriceSource.UNPRICED:
            what = f"it has no price: set {price_setting(provider)}"
        else:
            source = _SOURCES[price.source]
            what = f"it is priced by {source}; check the name (a wrong one is a 404)"
        warnings.append(f"{name}: LiteLLM's price map does not know model {model!r}: {what}")
    return warnings
