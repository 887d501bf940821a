"""LLMClient: validate, look in the cache, walk the providers, record, answer.

The decisions live in :mod:`leadfactory.llm.flow`; this module only builds the
shared services and drives the flow, with blocking calls and ``time.sleep`` in
:meth:`LLMClient.chat_completion` and with ``await`` in
:meth:`LLMClient.achat_completion`.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from . import deferred, providers, shared_state
from .astream import AsyncStream, astream_call
from .batch import BatchMethods
from .cache import ResponseCache
from .cached_calls import Answer, CachedCalls
from .config import BUILTIN_PROVIDERS, LLMConfig
from .exceptions import LLMValidationError
from .flow import Call, Outcome, Request, Services, Sleep
from .health import HealthPolicy
from .ledger import Budget, CostLedger, Ledger, LedgerWorker, LedgerWrite, Reserve, UntrackedLedger
from .log import log_attempt
from .perform import aperform, awrite_ledger, perform, write_ledger
from .streaming import Stream, stream_call, stream_request
from .telemetry import Telemetry, observer_for
from .telemetry.watch import cache_hit, watched
from .tokens import estimate_prompt_tokens
from .validation import check_caller, check_messages, check_parameters

__all__ = ["LLMClient"]


class LLMClient(BatchMethods):
    """A chat-completion client that falls back across providers.

    ``LLMClient()`` reads its configuration from the environment; pass an
    :class:`LLMConfig` to configure it in code. ``ledger`` and ``cache`` may be
    given to share them between clients; otherwise they are opened lazily at the
    paths the configuration names. ``telemetry`` turns on spans and metrics
    (default: as ``LLM_TELEMETRY`` says; see observability.md). ``clock``, ``timer`` and
    ``sleep`` are seams for tests. Many requests at once: :meth:`map` and :meth:`amap`
    (from :class:`BatchMethods`).
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
        telemetry: Telemetry | None = None,
    ) -> None:
        self.config = config if config is not None else LLMConfig()
        self._clock = clock
        self._sleep = sleep
        self._ledger = ledger
        self._cache = cache
        self._on_budget_alert = on_budget_alert
        self._limiter = shared_state.limiter(self.config, clock)
        self._health = shared_state.health(
            self.config,
            HealthPolicy(
                failure_threshold=self.config.cooldown_failures,
                cooldown=max(self.config.cooldown_seconds, 1e-9),
                max_cooldown=max(
                    self.config.cooldown_max_seconds, self.config.cooldown_seconds, 1e-9
                ),
            ),
            clock=clock,
        )
        self._cached = CachedCalls(lambda: self.cache, self.config)
        self._configured_limits: dict[str, tuple[int | None, int | None]] = {}
        self._observer = observer_for(telemetry, self)  # None: off, and no work per call

    # -- shared pieces, opened on first use -----------------------------------------

    @property
    def ledger(self) -> Ledger:
        """The cost ledger (an untracked stand-in when LLM_COST_TRACKING is false)."""
        if self._ledger is None:
            self._ledger = shared_state.ledger(self.config, self._alert)
        return self._ledger

    @property
    def cache(self) -> ResponseCache:
        """The response cache (opened on first use)."""
        if self._cache is None:
            self._cache = ResponseCache(
                self.config.cache_path or ResponseCache.default_path(),
                ttl=self.config.cache_ttl,
                max_entries=self.config.cache_max_entries,
                write_behind=True,  # a lost answer costs one more call: not the caller's wait
                store=shared_state.cache_store(self.config),  # None: the SQLite file
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
        ledger = self.ledger
        return Services(
            config=self.config,
            limiter=self._limiter,
            health=self._health,
            ledger=ledger,
            budget=self._budget(),
            timer=time.perf_counter,
            log=log_attempt if self.config.log_requests else _no_log,
            count_tokens=estimate_prompt_tokens,
            settle_on_close=self._write_later if ledger.settles_in_background else None,
        )

    # -- requests ----------------------------------------------------------------

    def estimate_tokens(
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

    _estimate_tokens = estimate_tokens  # the name the user guide calls

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
            caller=check_caller(caller),
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
    ) -> dict[str, Any] | Stream:
        """Answer ``messages`` with the first provider that succeeds.

        ``temperature`` and ``max_tokens`` default to the configuration's values
        (0 means 0). ``model`` pins a provider (``"anthropic"``), a provider and
        model (``"openai/gpt-4o-mini"``), or overrides every provider's model.
        ``cache=False`` bypasses the cache; ``caller`` tags the ledger rows.
        Returns an OpenAI-shaped dict plus ``provider``, ``cost``, ``cached``,
        ``latency_ms`` and ``attempts``. ``stream=True`` returns a :class:`Stream` of
        chunks instead, once the first text arrived (see docs/streaming.md).
        """
        include_usage = stream_request(kwargs)  # None: not streamed
        request = self._request(messages, model, temperature, max_tokens, caller, kwargs)
        if include_usage is not None:
            cached = self._cached if cache and self.config.enable_caching else None
            parts = (self._services, self._perform, self._deliver, self._observer)
            return stream_call(cached, request, include_usage, *parts)
        if not (cache and self.config.enable_caching):
            return self._run(request)
        return self._cached.complete(request, self._run, self._deliver)

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
    ) -> dict[str, Any] | AsyncStream:
        """The asyncio twin of :meth:`chat_completion`: same arguments, same answer."""
        include_usage = stream_request(kwargs)
        request = self._request(messages, model, temperature, max_tokens, caller, kwargs)
        if include_usage is not None:
            cached = self._cached if cache and self.config.enable_caching else None
            parts = (self._aservices, self._aperform, self._adeliver, self._observer)
            return await astream_call(cached, request, include_usage, *parts)
        if not (cache and self.config.enable_caching):
            return await self._arun(request)
        return await self._cached.acomplete(request, self._arun, self._adeliver)

    # -- drivers -------------------------------------------------------------------

    def _run(self, request: Request) -> dict[str, Any]:
        providers.load_litellm()  # seconds, the first time: before any rate-limit permit
        flow = watched(self._observer, self._services(), request)
        send: Outcome | None = None
        deferral: deferred.Deferral | None = None  # a reservation to read before it leaves
        try:
            while True:
                try:
                    operation = flow.send(send)  # type: ignore[arg-type]
                except StopIteration as done:
                    return done.value
                if isinstance(operation, Call):
                    send, deferral = deferred.call_provider(operation.arguments, deferral), None
                elif isinstance(operation, Reserve) and (
                    deferral := deferred.start(self.ledger, operation)  # where the ledger can
                ):
                    send = Outcome(value=deferral.deferred)
                else:
                    send = self._perform(operation)
        finally:
            if deferral is not None:  # sent, and no call came: given back
                deferral.give_back()
            flow.close()  # interrupted mid-call: the flow settles (sent) or releases (not sent)

    def _perform(self, operation: Sleep | LedgerWrite) -> Outcome | None:
        return perform(self.ledger, self._sleep, operation)

    async def _arun(self, request: Request) -> dict[str, Any]:
        if not providers.litellm_loaded():  # seconds of import: not on the event loop
            await asyncio.to_thread(providers.load_litellm)
        flow = watched(self._observer, self._aservices(), request)
        send: Outcome | None = None
        try:
            while True:
                try:
                    operation = flow.send(send)  # type: ignore[arg-type]
                except StopIteration as done:
                    return done.value
                if not isinstance(operation, Call):
                    send = await self._aperform(operation)
                    continue
                try:
                    send = Outcome(response=await providers.acomplete(operation.arguments))
                except Exception as error:  # classified by the flow
                    send = Outcome(error=error)
        finally:
            flow.close()

    def _aservices(self) -> Services:
        services = self._services()
        if not isinstance(services.ledger, UntrackedLedger):  # behind the writes under way
            services.settle_on_close = self._write_later
        return services

    def _write_later(self, write: LedgerWrite) -> None:
        """Queue ``write`` on the ledger's writer thread (a settlement made while a flow
        closes, which cannot wait for it)."""
        LedgerWorker.for_ledger(self.ledger).write_later(write)

    async def _aperform(self, operation: Sleep | LedgerWrite) -> Outcome | None:
        return await aperform(self.ledger, operation)

    def _deliver(self, answer: Answer) -> dict[str, Any]:
        """The response, once its ledger row (a cache hit's) is written."""
        response, record = answer
        if record is not None and (error := write_ledger(self.ledger, record).error):
            raise error
        if record is not None and self._observer is not None:
            cache_hit(self._observer, record, self.config)
        return response

    async def _adeliver(self, answer: Answer) -> dict[str, Any]:
        response, record = answer
        if record is not None and (error := (await awrite_ledger(self.ledger, record)).error):
            raise error
        if record is not None and self._observer is not None:
            cache_hit(self._observer, record, self.config)
        return response

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
        """Close the ledger and cache files; send what the Redis limiter held back."""
        getattr(self._limiter, "flush", lambda: None)()  # usage corrections (redis_limits)
        for resource in (self._ledger, self._cache):
            if resource is not None:
                resource.close()

    def __enter__(self) -> LLMClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def aclose(self) -> None:
        """:meth:`close` on a thread: it waits for the ledger's queued writes."""
        await asyncio.to_thread(self.close)

    async def __aenter__(self) -> LLMClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _no_log(**_: Any) -> None:
    return None
