"""Where the state that processes and hosts may share lives, chosen by configuration.

With no URL everything is here as before: the SQLite ledger and cache files, and rate
limits, pauses and cooldowns in this process's memory (so per process).
``LLM_LEDGER_URL`` puts the ledger on PostgreSQL; ``LLM_CACHE_URL`` puts the cache on
Redis; ``LLM_REDIS_URL`` puts the limits, pauses and cooldowns there, shared by every
process and host using the same server. psycopg and redis-py are imported only when a
URL is set. :class:`Limiter` and :class:`Health` are the seams the flow uses: the
in-process classes and the Redis ones both fit them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from .health import HealthCheck, HealthPolicy, ProviderHealth
from .ratelimit import Denied, Permit, RateLimiter

if TYPE_CHECKING:
    from .cache.store import CacheStore
    from .config import LLMConfig
    from .ledger import BudgetAlert, Ledger
    from .redis_link import RedisLink

__all__ = [
    "Health",
    "Limiter",
    "backend_lines",
    "cache_store",
    "ledger",
    "check_and_acquire",
    "describe_backends",
    "health",
    "limiter",
]


@runtime_checkable
class Limiter(Protocol):
    """RPM/TPM windows and pauses per provider (:class:`RateLimiter` is one)."""

    @property
    def window(self) -> float: ...

    def configure(self, provider: str, *, rpm: int | None, tpm: int | None) -> None: ...

    def acquire(self, provider: str, tokens: int) -> Permit | Denied: ...

    def correct(self, permit: Permit, actual_tokens: int) -> None: ...

    def release(self, permit: Permit) -> None: ...

    def pause(self, provider: str, seconds: float) -> Any: ...  # Retry-After

    def paused_until(self, provider: str) -> float | None: ...

    def status(self, provider: str) -> dict: ...


@runtime_checkable
class Health(Protocol):
    """A circuit breaker per provider (:class:`ProviderHealth` is one)."""

    policy: HealthPolicy

    def check(self, provider: str) -> HealthCheck: ...

    def record_success(self, provider: str) -> None: ...

    def record_failure(self, provider: str, error: BaseException) -> None: ...

    def status(self, provider: str) -> dict: ...


def check_and_acquire(
    health: Health, limiter: Limiter, provider: str, tokens: int
) -> tuple[HealthCheck, Permit | Denied | None]:
    """``health.check(provider)``; with both on Redis, also the permit for ``tokens``
    in the same round trip (:mod:`.redis_gate`). The permit is None when not taken."""
    if getattr(limiter, "checks_health_too", False) is True:
        from .redis_gate import check_and_acquire as joint

        return joint(health, limiter, provider, tokens)
    return health.check(provider), None


def link_for(config: LLMConfig, setting: str) -> RedisLink | None:
    """The process's link to the server ``config.<setting>`` names, or None when unset."""
    url = getattr(config, setting)
    if url is None:
        return None
    from .redis_link import shared_link

    return shared_link(url.get_secret_value(), config.redis_key_prefix)


def limiter(config: LLMConfig, clock: Callable[[], float] = time.monotonic) -> Limiter:
    """This process's limiter, or the Redis one (over it) when ``LLM_REDIS_URL`` is set."""
    local = RateLimiter(clock=clock, window=config.rate_limit_window)
    link = link_for(config, "redis_url")
    if link is None:
        return local
    from .redis_limits import RedisRateLimiter

    return RedisRateLimiter(link, local)


def health(
    config: LLMConfig, policy: HealthPolicy, clock: Callable[[], float] = time.monotonic
) -> Health:
    """This process's breakers, or the Redis ones (over them) with ``LLM_REDIS_URL``."""
    local = ProviderHealth(policy, clock=clock)
    link = link_for(config, "redis_url")
    if link is None:
        return local
    from .redis_health import RedisProviderHealth

    return RedisProviderHealth(link, local)


def ledger(config: LLMConfig, on_alert: Callable[[BudgetAlert], None]) -> Ledger:
    """The cost ledger: PostgreSQL with ``LLM_LEDGER_URL``, else the SQLite file; an
    untracked stand-in when cost tracking is off."""
    from .ledger import CostLedger, UntrackedLedger

    if not config.cost_config.cost_tracking_enabled:
        return UntrackedLedger()
    if config.ledger_url is not None:
        from .ledger.postgres import PostgresLedger

        return PostgresLedger(
            config.ledger_url.get_secret_value(),
            on_alert=on_alert,
            stale_after=config.ledger_stale_after,
            settle_in_background=config.settles_in_background(),
        )
    return CostLedger(
        config.ledger_path or CostLedger.default_path(),
        on_alert=on_alert,
        stale_after=config.ledger_stale_after,
        settle_in_background=config.settles_in_background(),
    )


def cache_store(config: LLMConfig) -> CacheStore | None:
    """The Redis store ``LLM_CACHE_URL`` names, or None (the cache's own SQLite file)."""
    link = link_for(config, "cache_url")
    if link is None:
        return None
    from .cache.redis_store import RedisStore

    return RedisStore(link)


def describe_backends(config: LLMConfig) -> dict[str, dict[str, Any]]:
    """Where the shared state lives and whether its server answers now (a round trip)."""
    report: dict[str, dict[str, Any]] = {}
    for name, setting, local in (
        ("limits", "redis_url", "per process (set LLM_REDIS_URL to share them)"),
        ("cache", "cache_url", "SQLite file on this machine"),
    ):
        link = link_for(config, setting)
        if link is None:
            report[name] = {"backend": local, "shared": False, "answers": None}
        else:
            report[name] = {"backend": link.public, "shared": True, "answers": link.ping()}
    return report


def backend_lines(backends: dict[str, dict[str, Any]]) -> list[str]:
    """:func:`describe_backends` in words, for ``leadfactory-llm status``."""
    lines = ["shared state:"]
    for name, label in (("limits", "rate limits, pauses, cooldowns"), ("cache", "cache")):
        backend = backends[name]
        answers = {
            None: "",
            True: ", answers",
            False: ", NOT ANSWERING: each process uses its own state until it does",
        }[backend["answers"]]
        lines.append(f"  {label}: {backend['backend']}{answers}")
    return lines
