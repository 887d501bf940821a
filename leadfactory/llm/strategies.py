"""The one place that decides the order in which providers are tried.

Pure functions of the configured providers and the strategy: no I/O, no clock.
The client walks the returned order, skips providers that are unavailable right
now (cooling down, rate limited, over budget) and stops after ``max_tries``
providers were actually tried. Ties keep the declared order (built-in providers
ollama, openai, anthropic, then custom ones in the order they were added), so
every ordering is deterministic.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from .provider_config import FallbackStrategy, ProviderConfig

__all__ = ["FallbackPlan", "order_providers", "plan_fallback"]


@dataclass(frozen=True)
class FallbackPlan:
    """Providers to walk, in order, and how many of them may actually be called."""

    order: tuple[str, ...]
    max_tries: int
    raise_first_error: bool = False
    """fail_fast: the tried provider's own error is raised, not AllProvidersFailedError."""


def _smart_key(provider: ProviderConfig) -> tuple[int, int]:
    return (0 if provider.is_local else 1, -provider.priority)


def _cost_key(provider: ProviderConfig) -> float:
    return provider.cost_per_1k_tokens


def _quality_key(provider: ProviderConfig) -> int:
    return -provider.priority


_SORT_KEYS: dict[FallbackStrategy, Callable[[ProviderConfig], object] | None] = {
    FallbackStrategy.SMART_FALLBACK: _smart_key,
    FallbackStrategy.COST_OPTIMIZED: _cost_key,
    FallbackStrategy.QUALITY_OPTIMIZED: _quality_key,
    FallbackStrategy.ROUND_ROBIN: None,
    FallbackStrategy.FAIL_FAST: None,
}


def order_providers(
    providers: Mapping[str, ProviderConfig],
    strategy: FallbackStrategy | str,
    declared_order: Sequence[str],
) -> list[str]:
    """Every provider of ``providers`` in the order ``strategy`` tries them.

    ``declared_order`` lists the names in declared order; names missing from
    ``providers`` are ignored, and providers missing from it come last.
    """
    strategy = FallbackStrategy(strategy)
    names = [name for name in declared_order if name in providers]
    names += [name for name in providers if name not in names]
    key = _SORT_KEYS[strategy]
    if key is None:
        return names
    return sorted(names, key=lambda name: key(providers[name]))  # stable: ties keep order


def plan_fallback(
    providers: Mapping[str, ProviderConfig],
    strategy: FallbackStrategy | str,
    declared_order: Sequence[str],
    max_fallback_attempts: int,
) -> FallbackPlan:
    """The walk the client makes for one request."""
    strategy = FallbackStrategy(strategy)
    enabled = {name: p for name, p in providers.items() if p.enabled}
    order = tuple(order_providers(enabled, strategy, declared_order))
    if strategy is FallbackStrategy.FAIL_FAST:
        return FallbackPlan(order=order, max_tries=1, raise_first_error=True)
    return FallbackPlan(order=order, max_tries=max_fallback_attempts)
