"""The cache's part of a call: look, share a concurrent identical call, serve a hit,
store a fresh answer. :class:`~leadfactory.llm.client.LLMClient` hands each cacheable
request to :class:`CachedCalls`, with its own driver (``run``) and its way of writing
a hit's ledger row (``deliver``); the sync and async paths share everything else.
"""

from __future__ import annotations

import copy
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlunsplit

from .cache import ResponseCache, SingleFlight, cache_key
from .cache.host_flight import HostFlight
from .config import LLMConfig
from .flow import Request
from .ledger import CacheHit
from .log import log_event
from .redact import split_public

__all__ = ["Answer", "CachedCalls", "endpoint"]

Answer = tuple[dict[str, Any], CacheHit | None]  # a response, and the ledger row it still needs


class CachedCalls:
    """Cache lookups, single-flight and stores for one client (``cache`` opens its
    :class:`ResponseCache` on first use)."""

    def __init__(self, cache: Callable[[], ResponseCache], config: LLMConfig) -> None:
        self._cache = cache
        self._config = config
        self._flight = SingleFlight()  # among threads (or tasks) of this process
        self._hosts = HostFlight(lambda: cache().store, config.cache_flight_timeout)

    def complete(
        self,
        request: Request,
        run: Callable[[Request], dict[str, Any]],
        deliver: Callable[[Answer], dict[str, Any]],
    ) -> dict[str, Any]:
        """A cache hit, the answer of an identical call running in another thread, or
        ``run(request)``'s answer, stored."""
        key = self.key(request)
        answer = self._lookup(key, request)
        if answer is None:
            led: list[bool] = []

            def lead() -> dict[str, Any]:
                led.append(True)
                # Another caller may have finished the same request since our miss.
                again = self._lookup(key, request, again=True)
                if again is not None:
                    return deliver(again)
                return self._hosts.run(
                    key,
                    lambda: self._lookup(key, request),
                    deliver,
                    lambda: self._store(key, request, run(request), flush=True),
                )

            shared = self._flight.run(key, lead)
            answer = self._share(shared, key, request, led=bool(led))
        return deliver(answer)

    async def acomplete(
        self,
        request: Request,
        run: Callable[[Request], Awaitable[dict[str, Any]]],
        deliver: Callable[[Answer], Awaitable[dict[str, Any]]],
    ) -> dict[str, Any]:
        """The asyncio twin of :meth:`complete` (shared among tasks of one loop)."""
        key = self.key(request)
        answer = self._lookup(key, request)
        if answer is None:
            led: list[bool] = []

            async def lead() -> dict[str, Any]:
                led.append(True)
                again = self._lookup(key, request, again=True)
                if again is not None:
                    return await deliver(again)

                async def call() -> dict[str, Any]:
                    return self._store(key, request, await run(request), flush=True)

                return await self._hosts.arun(
                    key, lambda: self._lookup(key, request), deliver, call
                )

            shared = await self._flight.arun(key, lead)
            answer = self._share(shared, key, request, led=bool(led))
        return await deliver(answer)

    def stream_hit(self, request: Request) -> Answer | None:
        """A cache hit for a streamed request (replayed as chunks), else None.

        Streams do not share a call in flight: each miss streams its own answer."""
        return self._lookup(self.key(request), request)

    def stream_store(self, request: Request) -> Callable[[dict[str, Any]], Any]:
        """What stores a streamed request's answer once it completed (a cut one never)."""
        key = self.key(request)

        def store(response: dict[str, Any]) -> None:
            kept = {k: v for k, v in response.items() if k != "time_to_first_token_ms"}
            self._store(key, request, kept)

        return store

    @staticmethod
    def key(request: Request) -> str:
        """The cache key of what determines ``request``'s answer."""
        return cache_key(
            {
                "messages": request.messages,
                "model": request.model,
                "provider": request.pinned_provider,
                **request.params,
            }
        )

    # -- parts ---------------------------------------------------------------------

    def _endpoint_of(self, request: Request) -> Callable[[str | None], str | None]:
        providers = self._config.providers
        return lambda name: endpoint(providers.get(name or ""), request.model)

    def _store(
        self, key: str, request: Request, response: dict[str, Any], *, flush: bool = False
    ) -> dict[str, Any]:
        """Keep ``response`` for the next identical request, unless it has no answer in
        it (a provider failure, never cached); return it. ``flush``: in the store before
        returning (other hosts are waiting for it)."""
        if response.get("choices"):
            provider = response.get("provider")
            cache = self._cache()
            cache.set(
                key, response, provider=provider, endpoint=self._endpoint_of(request)(provider)
            )
            if flush and self._hosts.locks() is not None:
                cache.flush()
        return response

    def _lookup(self, key: str, request: Request, *, again: bool = False) -> Answer | None:
        """A cache hit for ``request``; ``again``: the second look, after a miss just now."""
        started = time.perf_counter()
        stored = self._cache().get(  # an independent copy
            key, memory_only=again, endpoint_of=self._endpoint_of(request)
        )
        if stored is None:
            return None
        return self._serve(stored, request, started)

    def _share(self, shared: dict[str, Any], key: str, request: Request, *, led: bool) -> Answer:
        """A single-flight result: the leader's own answer, or a cache hit for followers.

        The leader keeps the object it made; followers copy the cache's stored answer
        (untouched by the leader's caller), or the shared one if the store failed.
        """
        if led:
            return shared, None
        started = time.perf_counter()
        stored = self._cache().get(key, endpoint_of=self._endpoint_of(request))
        if stored is None or stored.get("id") != shared.get("id"):
            stored = copy.deepcopy(shared)
        return self._serve(stored, request, started)

    def _serve(self, stored: dict[str, Any], request: Request, started: float) -> Answer:
        """``stored`` marked as served from the cache, and the ledger row of the hit."""
        saved = float(stored.get("saved_cost", stored.get("cost")) or 0.0)
        usage = stored.get("usage") or {}
        elapsed_ms = (time.perf_counter() - started) * 1000.0
        stored.update(
            cached=True,
            cost=0.0,
            saved_cost=saved,
            latency_ms=round(elapsed_ms, 3),
            request_id=request.request_id,
            attempts=[
                {
                    "provider": stored.get("provider"),
                    "outcome": "cache_hit",
                    "error": None,
                    "detail": None,
                    "ms": round(elapsed_ms, 3),
                }
            ],
        )
        record = CacheHit(
            request_id=request.request_id,
            provider=str(stored.get("provider")),
            model=str(stored.get("model")),
            saved_usd=saved,
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            completion_tokens=int(usage.get("completion_tokens", 0)),
            latency_ms=elapsed_ms,
            strategy=str(self._config.fallback_strategy),
            caller=request.caller,
        )
        if self._config.log_requests:
            log_event(
                logging.INFO, f"llm cache hit provider={stored.get('provider')} saved=${saved:.6f}"
            )
        return stored, record


def endpoint(provider: Any, model: str | None = None) -> str | None:
    """What answers for ``provider`` (a ProviderConfig, or None: not configured) with
    ``model`` (else its default): ``"<name> <model> <base URL>"``, the URL without user,
    password, query or fragment, so no secret is ever part of it."""
    if provider is None:
        return None
    return _endpoint(provider.name, model or provider.default_model, provider.base_url)


@functools.lru_cache(maxsize=256)
def _endpoint(name: str, model: str, base_url: str | None) -> str:
    return f"{name} {model} {_public_url(base_url)}"


def _public_url(url: str | None) -> str:
    if not url:
        return "(default)"
    parts, netloc = split_public(url)
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
