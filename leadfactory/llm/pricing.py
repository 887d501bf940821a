"""What one model costs, and what one answer cost, from the usage the provider reported.

A :class:`Price` has four parts, in USD per token: input, output, cache read and cache
write (the cache parts may be unknown: those tokens are then priced as input). Where
a provider's price for a model comes from, first match wins:

1. ``user_model``: the price the user set for that model
   (``ProviderConfig.model_prices``; the environment's
   ``<PROVIDER>_INPUT_COST_PER_1K_TOKENS`` and ``<PROVIDER>_OUTPUT_COST_PER_1K_TOKENS``
   set it for the provider's configured model);
2. ``user_blended``: a ``cost_per_1k_tokens`` the user set (the guide's blended price,
   input and output alike);
3. ``default``: a local provider (Ollama) costs 0, whatever its model;
4. ``litellm_map``: LiteLLM's bundled price map, for the model actually called;
5. otherwise ``unpriced``: a paid model the map does not know and the user did not
   price, on any provider (a custom endpoint, a model newer than the installed
   LiteLLM). Every part is 0; under a budget such a call is refused
   (:func:`unpriced_refusal`), since a guessed price would make the budget a guess.
   The built-in providers' ``cost_per_1k_tokens`` defaults (the guide's example
   values) price nothing unless set.

A user price of 0 makes the provider free. The source is decided once per (provider,
model) and configuration: :func:`price_for` is a dict lookup after the first call.

:func:`token_usage` reads the usage LiteLLM returns (OpenAI's shape, whatever the
vendor): ``prompt_tokens`` counts every input token, cached or not (LiteLLM adds
Anthropic's ``cache_read_input_tokens`` and ``cache_creation_input_tokens``, which
Anthropic reports apart from its ``input_tokens``); ``prompt_tokens_details``
holds ``cached_tokens`` (cache reads) and ``cache_write_tokens`` (cache writes);
``completion_tokens`` includes ``completion_tokens_details.reasoning_tokens``.
Impossible counts are clamped and named in :attr:`TokenUsage.clamped`, never priced
as given.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from .exceptions import LLMConfigurationError
from .model_map import map_entry
from .provider_config import ModelPrice, ProviderConfig
from .settings_env import BUILTIN_PROVIDERS

__all__ = [
    "Charge",
    "Price",
    "PriceSource",
    "TokenUsage",
    "charge",
    "price_for",
    "price_setting",
    "token_usage",
    "unpriced_refusal",
    "worst_case_cost",
]


class PriceSource(StrEnum):
    """Where a price came from (the ledger row names it)."""

    USER_MODEL = "user_model"
    USER_BLENDED = "user_blended"
    LITELLM_MAP = "litellm_map"
    DEFAULT = "default"
    UNPRICED = "unpriced"


@dataclass(frozen=True)
class Price:
    """USD per token for one (provider, model), and where the figures came from.

    ``cache_read`` and ``cache_write`` are None when unknown: those tokens are then
    priced as input.
    """

    input: float
    output: float
    cache_read: float | None
    cache_write: float | None
    source: PriceSource

    @property
    def is_free(self) -> bool:
        """True when priced, and every part is 0 (Ollama, or a user price of 0)."""
        parts = (self.input, self.output, self.cache_read or 0.0, self.cache_write or 0.0)
        return self.source is not PriceSource.UNPRICED and not any(parts)

    def cost(self, tokens: TokenUsage) -> float:
        """Dollars for ``tokens`` at this price (never negative)."""
        cache_read = self.input if self.cache_read is None else self.cache_read
        cache_write = self.input if self.cache_write is None else self.cache_write
        return max(
            0.0,
            tokens.input_tokens * self.input
            + tokens.cache_read_tokens * cache_read
            + tokens.cache_write_tokens * cache_write
            + tokens.output_tokens * self.output,
        )


def price_for(provider: ProviderConfig, model: str | None = None) -> Price:
    """The price of ``model`` (default: the provider's) on ``provider``, by the rules above."""
    model = model or provider.default_model
    blended = provider.cost_per_1k_tokens if provider.has_user_blended_price else None
    return _resolve(
        provider.name, model, provider.is_local, provider.model_prices.get(model), blended
    )


@functools.lru_cache(maxsize=1024)
def _resolve(
    name: str, model: str, local: bool, user_price: ModelPrice | None, blended: float | None
) -> Price:
    if user_price is not None:
        return Price(
            user_price.input_cost_per_token,
            user_price.output_cost_per_token,
            user_price.cache_read_cost_per_token,
            user_price.cache_write_cost_per_token,
            PriceSource.USER_MODEL,
        )
    if blended is not None:
        return _blended(blended, PriceSource.USER_BLENDED)
    if local:
        return Price(0.0, 0.0, None, None, PriceSource.DEFAULT)
    return _map_price(name, model) or Price(0.0, 0.0, None, None, PriceSource.UNPRICED)


def price_setting(provider: ProviderConfig, model: str | None = None) -> str:
    """Where to set a price for ``model`` on ``provider``: the variables, then the field."""
    model = model or provider.default_model
    table = f"ProviderConfig.model_prices[{model!r}]"
    if provider.name not in BUILTIN_PROVIDERS:
        return f"{table} or ProviderConfig.cost_per_1k_tokens"
    prefix = provider.name.upper()
    blended = f"{prefix}_COST_PER_1K_TOKENS (every model, input and output alike)"
    if model != provider.default_model:  # the split variables price the default model only
        return f"{blended}, or {table}"
    split = f"{prefix}_INPUT_COST_PER_1K_TOKENS and {prefix}_OUTPUT_COST_PER_1K_TOKENS"
    return f"{split}, or {blended}, or {table}"


def unpriced_refusal(
    provider: ProviderConfig, model: str, price: Price, *, budgeted: bool
) -> LLMConfigurationError | None:
    """The error refusing a call to a paid model with no price while a budget is on.

    ``budgeted``: cost tracking is on and some limit (per request, daily, monthly) is
    set. Without a price such a call would cost $0 to every budget, so it is refused
    before it is sent; with no budget it goes ahead, its rows marked ``unpriced``.
    """
    if not budgeted or price.source is not PriceSource.UNPRICED:
        return None
    return LLMConfigurationError(
        f"{provider.name}: model {model!r} has no price (LiteLLM's price map does not know"
        f" it and none is configured), so the budgets cannot count it: set"
        f" {price_setting(provider, model)} (USD), or switch the budgets off",
        provider=provider.name,
        metadata={"model": model, "reason": "unpriced", "set": price_setting(provider, model)},
    )


def _blended(per_1k: float, source: PriceSource) -> Price:
    per_token = per_1k / 1000.0
    return Price(per_token, per_token, None, None, source)


def _map_price(name: str, model: str) -> Price | None:
    entry = map_entry(name, model)
    if entry is None:
        return None
    parts = [
        _unit_price(entry.get(key))
        for key in (
            "input_cost_per_token",
            "output_cost_per_token",
            "cache_read_input_token_cost",
            "cache_creation_input_token_cost",
        )
    ]
    if parts[0] is None or parts[1] is None:
        return None  # the map knows the model but not its price
    return Price(parts[0], parts[1], parts[2], parts[3], PriceSource.LITELLM_MAP)


def _unit_price(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) and value >= 0 else None


# -- usage -----------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenUsage:
    """One answer's tokens, split the way they are billed.

    ``input_tokens`` are the prompt tokens that were neither read from nor written to
    a cache; ``output_tokens`` include ``reasoning_tokens``. ``clamped`` names each
    impossible count the provider reported and what it was clamped to (empty when the
    usage made sense).
    """

    input_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    output_tokens: int
    reasoning_tokens: int
    clamped: tuple[str, ...] = ()

    @property
    def prompt_tokens(self) -> int:
        return self.input_tokens + self.cache_read_tokens + self.cache_write_tokens


def _field(source: Any, name: str) -> Any:
    if source is None:
        return None
    if isinstance(source, Mapping):
        return source.get(name)
    return getattr(source, name, None)


def token_usage(usage: Any) -> TokenUsage:
    """The billed split of a usage dict or object in LiteLLM's (OpenAI's) shape."""
    notes: list[str] = []

    def count(name: str, value: Any) -> int:
        if value is None:
            return 0
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            # the provider's value itself is not repeated: it is text of unknown origin
            notes.append(f"{name} is not a count (a {type(value).__name__}): counted as 0")
            return 0
        if value < 0:
            notes.append(f"{name}={value!r} is negative: counted as 0")
            return 0
        return int(value)

    prompt_details = _field(usage, "prompt_tokens_details")
    completion_details = _field(usage, "completion_tokens_details")
    prompt = count("prompt_tokens", _field(usage, "prompt_tokens"))
    completion = count("completion_tokens", _field(usage, "completion_tokens"))
    cache_read = count("cached_tokens", _first(prompt_details, usage, _CACHE_READ_FIELDS))
    cache_write = count("cache_write_tokens", _first(prompt_details, usage, _CACHE_WRITE_FIELDS))
    reasoning = count("reasoning_tokens", _field(completion_details, "reasoning_tokens"))

    if cache_read > prompt:
        notes.append(f"cached_tokens={cache_read} > prompt_tokens={prompt}: clamped to {prompt}")
        cache_read = prompt
    if cache_read + cache_write > prompt:
        left = prompt - cache_read
        notes.append(
            f"cache_write_tokens={cache_write} > prompt_tokens - cached_tokens={left}: "
            f"clamped to {left}"
        )
        cache_write = left
    if reasoning > completion:
        notes.append(
            f"reasoning_tokens={reasoning} > completion_tokens={completion}: "
            f"clamped to {completion}"
        )
        reasoning = completion
    return TokenUsage(
        input_tokens=prompt - cache_read - cache_write,
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
        output_tokens=completion,
        reasoning_tokens=reasoning,
        clamped=tuple(notes),
    )


# LiteLLM's names first (prompt_tokens_details), then the ones it also sets on the usage.
_CACHE_READ_FIELDS = ("cached_tokens", "cache_read_input_tokens")
_CACHE_WRITE_FIELDS = ("cache_write_tokens", "cache_creation_tokens", "cache_creation_input_tokens")


def _first(details: Any, usage: Any, names: tuple[str, ...]) -> Any:
    for source in (details, usage):
        for name in names:
            value = _field(source, name)
            if value is not None:
                return value
    return None


@dataclass(frozen=True)
class Charge:
    """What one answer cost: its billed tokens, the price used, and the dollars."""

    usage: TokenUsage
    price: Price
    cost_usd: float


def charge(usage: Any, price: Price) -> Charge:
    """The cost of an answer with ``usage`` at ``price`` (never negative)."""
    tokens = token_usage(usage)
    return Charge(tokens, price, price.cost(tokens))


def worst_case_cost(price: Price, prompt_tokens: int, max_tokens: int) -> float:
    """The most a request can cost: every prompt token uncached, ``max_tokens`` of output."""
    return max(0, prompt_tokens) * price.input + max(0, max_tokens) * price.output
