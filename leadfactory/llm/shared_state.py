"""Which backend holds the state that processes and hosts may share, by configuration.

With no URL everything is here as before: the SQLite cache file, and rate limits,
pauses and cooldowns in this process's memory. ``LLM_CACHE_URL`` puts the cache on
Redis; ``LLM_REDIS_URL`` puts the limits, pauses and cooldowns there. redis-py is
imported only when a URL is set.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .cache.store import CacheStore
    from .config import LLMConfig
    from .redis_link import RedisLink

__all__ = ["cache_store", "link_for"]


def link_for(config: LLMConfig, setting: str) -> RedisLink | None:
    """The process's link to the server ``config.<setting>`` names, or None when unset."""
    url = getattr(config, setting)
    if url is None:
        return None
    from .redis_link import shared_link

    return shared_link(url.get_secret_value(), config.redis_key_prefix)


def cache_store(config: LLMConfig) -> CacheStore | None:
    """The Redis store ``LLM_CACHE_URL`` names, or None (the cache's own SQLite file)."""
    link = link_for(config, "cache_url")
    if link is None:
        return None
    from .cache.redis_store import RedisStore

    return RedisStore(link)


def describe_backends(config: LLMConfig, *, probe: bool = True) -> dict[str, Any]:
    """Where the shared state lives and (``probe``) whether its server answers now."""
    report: dict[str, Any] = {}
    for name, setting, local in (
        ("limits_and_cooldowns", "redis_url", "this process only (no LLM_REDIS_URL)"),
        ("cache", "cache_url", "SQLite file"),
    ):
        link = link_for(config, setting)
        if link is None:
            report[name] = {"backend": local, "answers": None}
        else:
            report[name] = {"backend": link.public, "answers": link.ping() if probe else None}
    return report
