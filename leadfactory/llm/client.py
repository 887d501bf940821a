"""LLMClient: validate, look in the cache, walk the providers, record, answer.

The decisions live in :mod:`leadfactory.llm.flow`; this module only builds the
shared services and drives the flow, with blocking calls and ``time.sleep`` in
:meth:`LLMClient.chat_completion` and with ``await`` in
:meth:`LLMClient.achat_completion`.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from . import providers
from .cache import ResponseCache, cache_key
from .cache.singleflight import SingleFlight
from .config import BUILTIN_PROVIDERS, LLMConfig
from .exceptions import LLMValidationError
from .flow import Outcome, Record, Request, Services, Sleep, fallback_flow
from .health import HealthPolicy, ProviderHealth
from .ledger import Budget, CostLedger
from .ledger_worker import LedgerWorker
from .log import log_attempt, log_event
from .ratelimit import RateLimiter
from .tokens import estimate_prompt_tokens
from .untracked import UntrackedLedger
from .validation import check_messages, check_parameters

__all__ = ["LLMClient"]

_Answer = tuple[dict[str, Any], Record | None]  # a response, and the ledger row it still needs


class LLMClient:
    """A chat-completion client that falls back across providers.

    ``LLMClient()`` reads its configuration from the environment; pass an
    :class:`LLMConfig` to configure it in code. ``ledger`` and ``cache`` may be
    given to share them between clients; otherwise they are opened lazily at the
    paths the configuration names. ``clock``, ``timer`` and ``sleep`` are seams for
    tests.
    """

    def __init__(
        self,
        config: LLMConfig | None = None,
        *,
        ledger: CostLedger | None = None,
        cache: ResponseCache | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        on_budget_alert: Callable[[Any], None] | None = None,
    ) -> None:
        self.config = config if config is not None else LLMConfig()
        self._clock = clock
        self._sleep = sleep
        self._ledger = ledger
        self._cache = cache
        self._on_budget_alert = on_budget_alert
        self._limiter = RateLimiter(clock=clock)
        self._health = ProviderHealth(
            HealthPolicy(
                failure_threshold=self.config.cooldown_failures,
                cooldown=max(self.config.cooldown_seconds, 1e-9),
                max_cooldown=max(
                    self.config.cooldown_max_seconds, self.config.cooldown_seconds, 1e-9
                ),
            ),
            clock=clock,
        )
        self._singleflight = SingleFlight()
        self._configured_limits: dict[str, tuple[int | None, int | None]] = {}

    # -- shared pieces, opened on first use -----------------------------------------

    @property
    def ledger(self) -> CostLedger | UntrackedLedger:
        """The cost ledger (an untracked stand-in when LLM_COST_TRACKING is false)."""
        if self._ledger is None:
            if self.config.cost_config.cost_tracking_enabled:
                path = self.config.ledger_path or CostLedger.default_path()
                self._ledger = CostLedger(path, on_alert=self._alert)
            else:
                self._ledger = UntrackedLedger()
        return self._ledger

    @property
    def cache(self) -> ResponseCache:
        """The response cache (opened on first use)."""
        if self._cache is None:
            self._cache = ResponseCache(
                self.config.cache_path or ResponseCache.default_path(),
                ttl=self.config.cache_ttl,
                max_entries=self.config.cache_max_entries,
            )
        return self._cache

    def _alert(self, alert: Any) -> None:
        if self._on_budget_alert is not None:
            self._on_budget_alert(alert)

    def _budget(self) -> Budget:
        costs = self.config.cost_config
        return Budget(
            max_cost_per_request=costs.max_cost_per_request,
            daily_limit=costs.daily_cost_limit,
            monthly_limit=costs.monthly_cost_limit,
            alert_threshold=costs.budget_alert_threshold,
        )

    def _services(self) -> Services:
        for name, provider in self.config.providers.items():
            limits = (provider.rate_limit_rpm, provider.rate_limit_tpm)
            if self._configured_limits.get(name) != limits:
                self._limiter.configure(name, rpm=limits[0], tpm=limits[1])
                self._configured_limits[name] = limits
        return Services(
            config=self.config,
            limiter=self._limiter,
            health=self._health,
            ledger=self.ledger,
            budget=self._budget(),
            timer=time.perf_counter,
            log=log_attempt if self.config.log_requests else _no_log,
            count_tokens=estimate_prompt_tokens,
        )

    # -- requests ----------------------------------------------------------------

    def _estimate_tokens(
        self, messages: Sequence[Mapping[str, Any]], max_tokens: int | None = None
    ) -> int:
        """Prompt tokens (LiteLLM's counter) plus the completion allowance ``max_tokens``.

        Exact for OpenAI's models and close for the others; it loads a tokenizer on
        first use. Requests themselves are checked against budgets on a cheaper
        estimate (:mod:`leadfactory.llm.tokens`) and settled on the provider's usage.
        """
        checked = check_messages(messages)
        allowance = self.config.default_max_tokens if max_tokens is None else max_tokens
        # One tokenizer for every provider: LiteLLM's bundled cl100k needs no download.
        return providers.count_prompt_tokens("gpt-4", checked) + int(allowance)

    def _request(
        self,
        messages: Any,
        model: str | None,
        temperature: float | None,
        max_tokens: int | None,
        caller: str | None,
        extra: Mapping[str, Any],
    ) -> Request:
        checked = check_messages(messages)
        temperature, max_tokens, extra = check_parameters(
            self.config.default_temperature if temperature is None else temperature,
            self.config.default_max_tokens if max_tokens is None else max_tokens,
            extra,
        )
        pinned, model = self._resolve_model(model)
        return Request(
            request_id=uuid.uuid4().hex,
            messages=checked,
            params={"temperature": temperature, "max_tokens": max_tokens, **extra},
            max_tokens=max_tokens,
            model=model,
            pinned_provider=pinned,
            caller=caller,
        )

    def _resolve_model(self, model: Any) -> tuple[str | None, str | None]:
        """``model`` may name a provider (``"openai"``), a provider and a model
        (``"openai/gpt-4o-mini"``), or a bare model tried on every provider."""
        if model is None:
            return None, None
        if not isinstance(model, str) or not model.strip():
            raise LLMValidationError(
                f"Invalid model: expected a model name, got {model!r}", metadata={"field": "model"}
            )
        head, sep, tail = model.partition("/")
        if head in self.config.providers:
            return head, (tail or None) if sep else None
        if head in BUILTIN_PROVIDERS:  # pinned to a provider this configuration lacks
            known = ", ".join(self.config.providers) or "none"
            raise LLMValidationError(
                f"model={model!r} pins the {head} provider, which is not configured"
                f" (set {head.upper()}_{'HOST' if head == 'ollama' else 'API_KEY'},"
                f" or add it to LLMConfig.providers); configured: {known}",
                provider=head,
                metadata={"field": "model"},
            )
        return None, model

    def _cache_key(self, request: Request) -> str:
        return cache_key(
            {
                "messages": request.messages,
                "model": request.model,
                "provider": request.pinned_provider,
                **request.params,
            }
        )

    def chat_completion(
        self,
        messages: Sequence[Mapping[str, Any]],
        model: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        *,
        cache: bool = True,
        caller: str | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """Answer ``messages`` with the first provider that succeeds.

        ``temperature`` and ``max_tokens`` default to the configuration's values
        (0 means 0). ``model`` pins a provider (``"anthropic"``), a provider and
        model (``"openai/gpt-4o-mini"``), or overrides every provider's model.
        ``cache=False`` bypasses the cache; ``caller`` tags the ledger rows.
        Returns an OpenAI-shaped dict plus ``provider``, ``cost``, ``cached``,
        ``latency_ms`` and ``attempts``.
        """
        request = self._request(messages, model, temperature, max_tokens, caller, kwargs)
        if not (cache and self.config.enable_caching):
            return self._run(request)
        key = self._cache_key(request)
        answer = self._lookup(key, request)
        if answer is None:
            led: list[bool] = []

            def lead() -> dict[str, Any]:
                led.append(True)
                return self._run_and_store(key, request)

            shared = self._singleflight.run(key, lead)
            answer = self._share(shared, key, request, led=bool(led))
        return self._deliver(answer)

    async def achat_completion(
        self,
        messages: Sequence[Mapping[str, Any]],
        model: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        *,
        cache: bool = True,
        caller: str | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """The asyncio twin of :meth:`chat_completion`: same arguments, same answer."""
        request = self._request(messages, model, temperature, max_tokens, caller, kwargs)
        if not (cache and self.config.enable_caching):
            return await self._arun(request)
        key = self._cache_key(request)
        answer = self._lookup(key, request)
        if answer is None:
            led: list[bool] = []

            async def lead() -> dict[str, Any]:
                led.append(True)
                return await self._arun_and_store(key, request)

            shared = await self._singleflight.arun(key, lead)
            answer = self._share(shared, key, request, led=bool(led))
        return await self._adeliver(answer)

    # -- drivers -------------------------------------------------------------------

    def _run(self, request: Request) -> dict[str, Any]:
        flow = fallback_flow(self._services(), request)
        send: Outcome | None = None
        try:
            while True:
                try:
                    operation = flow.send(send)  # type: ignore[arg-type]
                except StopIteration as done:
                    return done.value
                if isinstance(operation, Sleep):
                    self._sleep(operation.seconds)
                    send = None
                elif isinstance(operation, Record):
                    send = _write_ledger(self.ledger, operation)
                else:
                    send = _call_provider(operation.arguments)
        finally:
            flow.close()  # interrupted mid-call: the flow releases its reservation

    async def _arun(self, request: Request) -> dict[str, Any]:
        if not providers.litellm_loaded():  # seconds of import: not on the event loop
            await asyncio.to_thread(providers.load_litellm)
        flow = fallback_flow(self._services(), request)
        send: Outcome | None = None
        try:
            while True:
                try:
                    operation = flow.send(send)  # type: ignore[arg-type]
                except StopIteration as done:
                    return done.value
                if isinstance(operation, Sleep):
                    await asyncio.sleep(operation.seconds)
                    send = None
                elif isinstance(operation, Record):
                    send = await self._arecord(operation)
                else:
                    try:
                        send = Outcome(response=await providers.acomplete(operation.arguments))
                    except Exception as error:  # classified by the flow
                        send = Outcome(error=error)
        finally:
            flow.close()

    async def _arecord(self, record: Record) -> Outcome:
        """A ledger write from a coroutine: on the ledger's writer thread, off the loop."""
        ledger = self.ledger
        if not isinstance(ledger, CostLedger):  # untracked: nothing to wait for
            return _write_ledger(ledger, record)
        try:
            value = await LedgerWorker.for_ledger(ledger).call(record.method, **record.kwargs)
        except Exception as error:
            return Outcome(error=error)
        if record.method == "settle":  # the alerts it fired, announced here on the loop
            for alert in value or ():
                ledger.announce(alert)
            value = None
        return Outcome(value=value)

    def _run_and_store(self, key: str, request: Request) -> dict[str, Any]:
        # Another caller may have finished the same request since our cache miss.
        answer = self._lookup(key, request, again=True)
        if answer is not None:
            return self._deliver(answer)
        response = self._run(request)
        self.cache.set(key, response, provider=response["provider"])
        return response

    async def _arun_and_store(self, key: str, request: Request) -> dict[str, Any]:
        answer = self._lookup(key, request, again=True)
        if answer is not None:
            return await self._adeliver(answer)
        response = await self._arun(request)
        self.cache.set(key, response, provider=response["provider"])
        return response

    def _deliver(self, answer: _Answer) -> dict[str, Any]:
        """The response, once its ledger row (a cache hit's) is written."""
        response, record = answer
        if record is not None and (error := _write_ledger(self.ledger, record).error):
            raise error
        return response

    async def _adeliver(self, answer: _Answer) -> dict[str, Any]:
        response, record = answer
        if record is not None and (error := (await self._arecord(record)).error):
            raise error
        return response

    def _lookup(self, key: str, request: Request, *, again: bool = False) -> _Answer | None:
        """A cache hit for ``request``; ``again``: the second look, after a miss just now."""
        started = time.perf_counter()
        stored = self.cache.get(key, memory_only=again)  # an independent copy
        if stored is None:
            return None
        return self._serve_cached(stored, request, started)

    def _share(self, shared: dict[str, Any], key: str, request: Request, *, led: bool) -> _Answer:
        """A single-flight result: the leader's own answer, or a cache hit for followers.

        The leader keeps the object it made; followers copy the cache's stored answer
        (untouched by the leader's caller), or the shared one if the store failed.
        """
        if led:
            return shared, None
        started = time.perf_counter()
        stored = self.cache.get(key)
        if stored is None or stored.get("id") != shared.get("id"):
            stored = copy.deepcopy(shared)
        return self._serve_cached(stored, request, started)

    def _serve_cached(self, stored: dict[str, Any], request: Request, started: float) -> _Answer:
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
        record = Record(
            "record_cache_hit",
            {
                "request_id": request.request_id,
                "provider": str(stored.get("provider")),
                "model": str(stored.get("model")),
                "saved_usd": saved,
                "prompt_tokens": int(usage.get("prompt_tokens", 0)),
                "completion_tokens": int(usage.get("completion_tokens", 0)),
                "latency_ms": elapsed_ms,
                "strategy": str(self.config.fallback_strategy),
                "caller": request.caller,
            },
        )
        if self.config.log_requests:
            log_event(
                logging.INFO, f"llm cache hit provider={stored.get('provider')} saved=${saved:.6f}"
            )
        return stored, record

    # -- status and housekeeping ----------------------------------------------------

    def get_available_providers(self) -> list[str]:
        """Providers the next request could use, in the strategy's order."""
        from .strategies import plan_fallback

        status = self.get_provider_status()
        config = self.config
        plan = plan_fallback(
            config.providers,
            config.fallback_strategy,
            config.declared_order(),
            len(config.providers),
        )
        return [name for name in plan.order if status[name]["available"]]

    def get_provider_status(self) -> dict[str, dict[str, Any]]:
        """Per provider: configuration, availability (and why not), spend, health, limits."""
        from .status import provider_status

        return provider_status(self, self._services())

    def reset_cost_tracking(self, provider: str | None = None) -> None:
        """Reset the spend the budgets count (all providers, or one); history is kept."""
        if provider is not None and provider not in self.config.providers:
            known = ", ".join(self.config.providers) or "none"
            raise LLMValidationError(f"Unknown provider {provider!r}; configured: {known}")
        self.ledger.reset(provider)

    def clear_cache(self) -> int:
        """Empty the response cache; returns how many entries were removed."""
        return self.cache.clear()

    def close(self) -> None:
        """Close the ledger and cache files."""
        for resource in (self._ledger, self._cache):
            if resource is not None:
                resource.close()

    def __enter__(self) -> LLMClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _call_provider(arguments: Mapping[str, Any]) -> Outcome:
    try:
        return Outcome(response=providers.complete(arguments))
    except Exception as error:  # classified by the flow
        return Outcome(error=error)


def _write_ledger(ledger: Any, record: Record) -> Outcome:
    try:
        return Outcome(value=getattr(ledger, record.method)(**record.kwargs))
    except Exception as error:  # a refusal, or a ledger failure the flow raises
        return Outcome(error=error)


def _no_log(**_: Any) -> None:
    return None
