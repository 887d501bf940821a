"""What ``get_provider_status()`` reports for each configured provider."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from .exceptions import LLMQuotaExceededError
from .pricing import PriceSource, price_for, unpriced_refusal, worst_case_cost
from .provider_config import ProviderConfig
from .redact import redact

if TYPE_CHECKING:
    from .client import LLMClient
    from .flow import Services

__all__ = ["provider_status"]


def _wall_time(seconds_left: float | None) -> str | None:
    """Seconds from now as an ISO UTC time (None when there is nothing to wait for)."""
    if not seconds_left:
        return None
    return (datetime.now(UTC) + timedelta(seconds=seconds_left)).isoformat(timespec="seconds")


def _model_price(provider: ProviderConfig) -> dict[str, Any]:
    """The default model's input and output prices per 1,000 tokens (None: no price),
    and their source (``pricing.PriceSource``)."""
    price = price_for(provider)
    priced = price.source is not PriceSource.UNPRICED
    return {
        "input_cost_per_1k_tokens": price.input * 1000 if priced else None,
        "output_cost_per_1k_tokens": price.output * 1000 if priced else None,
        "price_source": price.source.value,
    }


def provider_status(client: LLMClient, services: Services) -> dict[str, dict[str, Any]]:
    config = services.config
    spend = services.ledger.provider_summary()
    estimate_tokens = config.default_max_tokens
    report: dict[str, dict[str, Any]] = {}
    for name in config.declared_order():
        provider = config.providers[name]
        health = services.health.status(name)
        limits = services.limiter.status(name)
        reason = None
        if not provider.enabled:
            reason = "disabled"
        elif provider.missing_requirement():
            reason = provider.missing_requirement()
        elif health["state"] == "cooling_down" and health["seconds_left"] > 0:
            reason = f"cooling down after {health['consecutive_failures']} failures"
        elif limits.get("paused_for"):
            reason = f"paused by the provider for {limits['paused_for']:.1f}s (Retry-After)"
        elif unpriced := unpriced_refusal(
            provider, provider.default_model, price_for(provider), budgeted=config.budgets_on()
        ):
            reason = str(unpriced)
        else:
            try:
                services.ledger.check(
                    provider=name,
                    estimated_usd=worst_case_cost(price_for(provider), 0, estimate_tokens),
                    budget=services.budget,
                )
            except LLMQuotaExceededError as refusal:
                reason = f"over budget: {refusal}"
        used = spend.get(name, {})
        report[name] = {
            "enabled": provider.enabled,
            "available": reason is None,
            "unavailable_reason": reason,
            "model": provider.default_model,
            "base_url": redact(provider.base_url, ()) if provider.base_url else None,
            "priority": provider.priority,
            "cost_per_1k_tokens": provider.cost_per_1k_tokens,
            **_model_price(provider),
            "daily_cost": float(used.get("daily_cost", 0.0)),
            "monthly_cost": float(used.get("monthly_cost", 0.0)),
            "requests_today": int(used.get("requests_today", 0)),
            "errors_today": int(used.get("errors_today", 0)),
            "cache_hits_today": int(used.get("cache_hits_today", 0)),
            "rate_limit_rpm": provider.rate_limit_rpm,
            "rate_limit_tpm": provider.rate_limit_tpm,
            "requests_in_window": limits.get("requests_in_window", 0),
            "tokens_in_window": limits.get("tokens_in_window", 0),
            "health": health["state"],
            "consecutive_failures": health["consecutive_failures"],
            "cooling_down_until": _wall_time(health.get("seconds_left")),
        }
    return report
