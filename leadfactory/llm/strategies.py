"""The one place that decides the order in which providers are tried.

Pure functions of the configured providers and the strategy: no I/O, no clock.
The client walks the returned order, skips providers that are unavailable right
now (cooling down, rate limited, over budget) and stops after ``max_tries``
providers were actually tried. Ties keep the declared order (built-in providers
ollama, openai, anthropic, then custom ones in the order they were added), so
every ordering is deterministic.

``cost_optimized`` ranks providers by what the request would cost at each one's price
for its model (:mod:`leadfactory.llm.pricing`); without a request, a nominal one of
1,000 tokens in and 1,000 out. With the guide's blended prices, that is the guide's
order (by ``cost_per_1k_tokens``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from .pricing import PriceSource, price_for, worst_case_cost
from .provider_config import FallbackStrategy, ProviderConfig

__all__ = ["NOMINAL_REQUEST", "FallbackPlan", "RequestSize", "order_providers", "plan_fallback"]


@dataclass(frozen=True)
class RequestSize:
    """What ``cost_optimized`` prices: prompt tokens, ``max_tokens``, and a model override."""

    prompt_tokens: int = 1000
    max_tokens: int = 1000
    model: str | None = None


NOMINAL_REQUEST = RequestSize()
"""1,000 tokens in, 1,000 out, each provider's own model."""


@dataclass(frozen=True)
class FallbackPlan:
    """Providers to walk, in order, and how many of them may actually be called."""

    order: tuple[str, ...]
    max_tries: int
    raise_first_error: bool = False
    """fail_fast: the tried provider's own error is raised, not AllProvidersFailedError."""


def _smart_key(provider: ProviderConfig) -> tuple[int, int]:
    return (0 if provider.is_local else 1, -provider.priority)


def _quality_key(provider: ProviderConfig) -> int:
    return -provider.priority


_SORT_KEYS: dict[FallbackStrategy, Callable[[ProviderConfig], object] | None] = {
    FallbackStrategy.SMART_FALLBACK: _smart_key,
    FallbackStrategy.COST_OPTIMIZED: None,  # by request cost, see order_providers
    FallbackStrategy.QUALITY_OPTIMIZED: _quality_key,
    FallbackStrategy.ROUND_ROBIN: None,
    FallbackStrategy.FAIL_FAST: None,
}


def order_providers(
    providers: Mapping[str, ProviderConfig],
    strategy: FallbackStrategy | str,
    declared_order: Sequence[str],
    request: RequestSize = NOMINAL_REQUEST,
) -> list[str]:
    """Every provider of ``providers`` in the order ``strategy`` tries them.

    ``declared_order`` lists the names in declared order; names missing from
    ``providers`` are ignored, and providers missing from it come last. ``request``
    is what ``cost_optimized`` prices (the worst case: every prompt token uncached,
    all of ``max_tokens`` used).
    """
    strategy = FallbackStrategy(strategy)
    names = [name for name in declared_order if name in providers]
    names += [name for name in providers if name not in names]
    key = _SORT_KEYS[strategy]
    if strategy is FallbackStrategy.COST_OPTIMIZED:
        key = functools.partial(_request_cost, request=request)
    if key is None:
        return names
    return sorted(names, key=lambda name: key(providers[name]))  # stable: ties keep order


def _request_cost(provider: ProviderConfig, request: RequestSize) -> tuple[bool, float]:
    """A model with no known price comes after every priced one: its $0 is not cheap."""
    price = price_for(provider, request.model)
    unpriced = price.source is PriceSource.UNPRICED
    return unpriced, worst_case_cost(price, request.prompt_tokens, request.max_tokens)


def plan_fallback(
    providers: Mapping[str, ProviderConfig],
    strategy: FallbackStrategy | str,
    declared_order: Sequence[str],
    max_fallback_attempts: int,
    request: RequestSize = NOMINAL_REQUEST,
) -> FallbackPlan:
    """The walk the client makes for one request."""
    strategy = FallbackStrategy(strategy)
    enabled = {name: p for name, p in providers.items() if p.enabled}
    order = tuple(order_providers(enabled, strategy, declared_order, request))
    if strategy is FallbackStrategy.FAIL_FAST:
        return FallbackPlan(order=order, max_tries=1, raise_first_error=True)
    return FallbackPlan(order=order, max_tries=max_fallback_attempts)
