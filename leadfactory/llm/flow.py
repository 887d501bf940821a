"""The fallback loop's decisions, written once for the sync and the async client.

:func:`fallback_flow` is a generator that does no I/O and never sleeps. It yields
:class:`Call` when it wants a provider called, a ledger write (:class:`Reserve`,
:class:`Settle`, from :mod:`leadfactory.llm.ledger.writes`) when it wants the ledger
written and :class:`Sleep` when it wants to wait; the driver
(``LLMClient.chat_completion`` inline with ``time.sleep``, ``achat_completion`` with
``await``, ledger writes on the ledger's writer thread) performs the operation and
sends back an :class:`Outcome`. Everything else (order, availability, budgets, rate
limits, retries, classification, health, what the ledger rows say, the response dict)
is decided here, so the two clients cannot drift apart.
(One exception: the settlement of an attempt cancelled mid-call goes to
``Services.settle_on_close``, since a closing generator cannot yield.) What an attempt
is charged is decided in :mod:`.charges`; ``attempts[]`` entries are made in :mod:`.attempts`.
The operations and :class:`Services` are defined in :mod:`.flow_types`.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from dataclasses import replace
from typing import Any

from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from .attempts import (
    Walk,
    all_rate_limited,
    attempt_entry,
    cooling_error,
    no_providers_message,
    rate_limit_error,
)
from .charges import finish_answer, read_outcome, settlement, worst_case
from .classify import retry_same_provider
from .config import ProviderConfig
from .exceptions import (
    AllProvidersFailedError,
    LLMContextWindowError,
    LLMError,
    LLMLedgerUnavailableError,
    LLMQuotaExceededError,
    LLMRateLimitError,
    LLMStreamInterruptedError,
    LLMValidationError,
)
from .fit import FitCheck, no_fit_error, request_needs
from .flow_types import Call, Deferred, Operation, Outcome, Request, Services, Sleep
from .ledger import Release, Reservation, Reserve, Settle
from .pricing import price_for, unpriced_refusal, worst_case_cost
from .ratelimit import Denied, Permit
from .shared_state import check_and_acquire
from .strategies import FallbackPlan, RequestSize, plan_fallback

__all__ = ["Call", "Deferred", "Outcome", "Request", "Services", "Sleep", "fallback_flow"]

_MAX_BACKOFF = 30.0


def fallback_flow(services: Services, request: Request) -> Generator[Operation, Outcome, dict]:
    """Walk the providers for ``request``; returns the response dict or raises LLMError."""
    config = services.config
    if request.prompt_tokens is None:
        request = replace(request, prompt_tokens=services.count_tokens(request.messages))
    if request.pinned_provider is not None:
        plan = FallbackPlan(order=(request.pinned_provider,), max_tries=1, raise_first_error=True)
    else:
        plan = plan_fallback(
            config.providers,
            config.fallback_strategy,
            config.declared_order(),
            config.max_fallback_attempts,
            RequestSize(request.prompt_tokens or 0, request.max_tokens, request.model),
        )
    if not plan.order:
        raise AllProvidersFailedError({}, message=no_providers_message(config))
    waited = 0.0
    attempts: list[dict[str, Any]] = []
    fits = FitCheck(
        request.model,
        request.prompt_tokens or 0,
        request.max_tokens,
        request_needs(request.messages, request.params),
        config.context_margin,
    )
    while True:
        walk = Walk()
        try:
            response = yield from _walk(services, request, plan, walk, fits)
        except LLMStreamInterruptedError as cut:  # a stream failed after its first text
            cut.attempts = attempts + walk.attempts
            raise
        attempts += walk.attempts
        if response is not None:
            response["attempts"] = attempts
            return response
        if walk.tried:
            if plan.raise_first_error and walk.first_error is not None:
                raise walk.first_error
            raise AllProvidersFailedError(walk.errors, metadata={"attempts": attempts})
        if walk.nothing_fits():  # no call could succeed: say what ruled out each one
            raise no_fit_error(walk.misfits, attempts)
        if walk.rate_limited:
            wait = min(e.retry_after or 0.0 for e in walk.rate_limited)
            if waited + wait <= config.rate_limit_max_wait and math.isfinite(wait):
                yield Sleep(wait)
                waited += wait
                continue
            raise all_rate_limited(walk.rate_limited, wait)
        if walk.budget_refusals:
            raise walk.budget_refusals[0]
        raise AllProvidersFailedError(walk.errors, metadata={"attempts": attempts})


def _walk(
    services: Services, request: Request, plan: FallbackPlan, walk: Walk, fits: FitCheck
) -> Generator[Operation, Outcome, dict | None]:
    providers = services.config.providers
    for index, name in enumerate(plan.order):
        if walk.tried >= plan.max_tries:
            break
        provider = services.config.providers.get(name)
        unusable = _unusable(name, provider)
        if unusable is not None:
            walk.skip(name, "unavailable", unusable)
            continue
        assert provider is not None
        fit = fits(provider)
        if fit.error is not None:  # before the breaker: a skip never uses up its probe
            walk.skip(name, fit.reason or "", fit.error, **fit.figures)
            continue
        # The breaker's check, and on Redis the first attempt's permit in the same trip.
        tokens = (request.prompt_tokens or 0) + fit.max_tokens
        check, permit = check_and_acquire(services.health, services.limiter, name, tokens)
        if not check.allowed:
            walk.skip(name, "cooling_down", cooling_error(name, check.reason))
            continue
        fallback_left = walk.tried + 1 < plan.max_tries and any(
            _unusable(later, providers.get(later)) is None and fits(providers[later]).error is None
            for later in plan.order[index + 1 :]
        )
        if fit.max_tokens != request.max_tokens:  # lowered to the model's output limit
            params = {**request.params, "max_tokens": fit.max_tokens}
            request_here = replace(request, max_tokens=fit.max_tokens, params=params)
        else:
            request_here = request
        first_entry = len(walk.attempts)
        response = yield from _try_provider(
            services, request_here, provider, walk, fallback_left, permit
        )
        for entry in walk.attempts[first_entry:]:
            entry.update(fit.notes())
        if isinstance(walk.errors.get(name), LLMContextWindowError):  # refused as too long
            fits.refused_by(provider)
        if response is not None:
            return response
    return None


def _unusable(name: str, provider: ProviderConfig | None) -> LLMValidationError | None:
    """Why ``provider`` cannot be called at all (missing, disabled, no key or host)."""
    if provider is None or not provider.enabled:
        return LLMValidationError(f"{name}: not configured")
    missing = provider.missing_requirement()
    return LLMValidationError(f"{name}: {missing}", provider=name) if missing else None


def _try_provider(
    services: Services,
    request: Request,
    provider: ProviderConfig,
    walk: Walk,
    fallback_left: bool,
    permit: Permit | Denied | None = None,
) -> Generator[Operation, Outcome, dict | None]:
    """Up to 1 + max_retries attempts on one provider, as tenacity's policy decides.

    With another provider left to try, a refused connection is not retried: nothing
    listens there now, and the next provider answers sooner than a backoff would.
    """
    delays: list[float] = []

    def worth_retrying(error: BaseException) -> bool:
        if isinstance(error, LLMError) and error.metadata.get("empty_answer"):
            return False  # asked again, a provider tends to repeat it: ask the next one
        if fallback_left and isinstance(error, LLMError) and error.metadata.get("refused"):
            return False
        return retry_same_provider(error)

    retrying = Retrying(
        stop=stop_after_attempt(provider.max_retries + 1),
        wait=wait_exponential_jitter(
            multiplier=provider.retry_delay,
            jitter=provider.retry_delay,
            max=max(provider.retry_delay, _MAX_BACKOFF),
        ),
        retry=retry_if_exception(worth_retrying),
        sleep=delays.append,  # the driver sleeps, when this generator yields Sleep
        reraise=True,
    )
    error: LLMError | None = None
    try:
        for attempt in retrying:
            if delays:
                yield Sleep(delays.pop())
            result = yield from _attempt(services, request, provider, walk, permit)
            permit = None  # taken by the first attempt only
            if result is None:  # refused before reaching the provider (budget or rate limit)
                break
            if attempt.retry_state.attempt_number == 1:
                walk.tried += 1
            response, error = result
            if error is None:
                return response
            with attempt:  # tenacity records the failure and decides: retry, or reraise
                raise error
    except LLMStreamInterruptedError:
        raise  # its text reached the caller: never retried, never continued elsewhere
    except LLMError as final:
        error = final
    if error is not None:
        walk.errors[provider.name] = error
        walk.first_error = walk.first_error or error
    return None


def _attempt(
    services: Services,
    request: Request,
    provider: ProviderConfig,
    walk: Walk,
    permit: Permit | Denied | None = None,  # taken with the breaker's check, if it was
) -> Generator[Operation, Outcome, tuple[dict | None, LLMError | None] | None]:
    name, model = provider.name, request.model or provider.default_model
    price = price_for(provider, model)  # decided once per (provider, model)
    unpriced = unpriced_refusal(provider, model, price, budgeted=services.config.budgets_on())
    if unpriced is not None:  # no price, so the budgets could not count it: never sent
        if isinstance(permit, Permit):
            services.limiter.release(permit)
        walk.skip(name, "unpriced", unpriced)
        walk.budget_refusals.append(unpriced)
        return None
    estimate_tokens = (request.prompt_tokens or 0) + request.max_tokens
    if permit is None:
        permit = services.limiter.acquire(name, estimate_tokens)
    if isinstance(permit, Denied):
        error = rate_limit_error(permit)
        if math.isinf(permit.wait):
            walk.skip(name, "too_large", LLMValidationError(str(error), provider=name))
        else:
            walk.skip(name, "rate_limited", error)
            walk.rate_limited.append(error)
        return None
    reserve = Reserve(
        request_id=request.request_id,
        provider=name,
        model=model,
        estimated_usd=worst_case_cost(price, request.prompt_tokens or 0, request.max_tokens),
        budget=services.budget,
        strategy=str(services.config.fallback_strategy),
        caller=request.caller,
    )
    try:
        reserved = yield reserve
    except GeneratorExit:  # cancelled while reserving (the async writer gives the row back)
        services.limiter.release(permit)
        raise
    # Deferred: the driver reads the answer just before the request leaves.
    deferred = reserved.value if isinstance(reserved.value, Deferred) else None
    if reserved.error is not None:
        services.limiter.release(permit)
        _refused(walk, name, reserved.error)
        return None
    reservation: Reservation | None = None if deferred else reserved.value
    settled = sent = False
    in_flight: dict[str, Any] | None = None  # a settlement yielded and not yet confirmed
    try:
        arguments = services.arguments_for(
            provider, request.messages, model=request.model, params=request.params
        )
        started = services.timer()
        sent = True  # from here on the provider may have the request, and may bill it
        outcome = yield Call(name, arguments)
        if deferred is not None:  # the driver read the reservation's answer by now
            assert deferred.outcome is not None
            if deferred.outcome.error is not None:  # refused: the request was never sent
                settled = True  # nothing to settle or give back
                services.limiter.release(permit)
                _refused(walk, name, deferred.outcome.error)
                return None
            reservation = deferred.outcome.value
        assert reservation is not None
        elapsed_ms = (services.timer() - started) * 1000.0
        response, error, charge = read_outcome(outcome, request, provider)
        if charge is not None:
            services.limiter.correct(permit, charge.total_tokens)
        if response is not None:
            assert charge is not None
            finish_answer(request, provider, response, charge, price, elapsed_ms)
            in_flight = settlement(price, "success", charge, elapsed_ms)
            yield from _settle(reservation, in_flight)
            settled = True
            services.health.record_success(name)
            walk.attempts.append(attempt_entry(name, "success", None, elapsed_ms))
            services.log(response=response, provider=name, latency_ms=elapsed_ms)
            return response, None
        assert error is not None
        abandoned = error.metadata.get("abandoned")  # a stream its caller left: no fault
        error_class = "Cancelled" if abandoned else type(error).__name__
        in_flight = settlement(price, "error", charge, elapsed_ms, error_class)
        yield from _settle(reservation, in_flight)
        settled = True
        if not abandoned:
            services.health.record_failure(name, error)
        if isinstance(error, LLMRateLimitError) and error.retry_after:
            asked = error.retry_after
            error.retry_after = min(asked, services.config.max_retry_after)
            if error.retry_after < asked:  # cut to max_retry_after: the attempt says so
                error.metadata["retry_after_requested"] = asked
            services.limiter.pause(name, error.retry_after)
        walk.attempts.append(attempt_entry(name, "error", error, elapsed_ms))
        services.log(error=error, provider=name, latency_ms=elapsed_ms, model=model)
        if isinstance(error, LLMStreamInterruptedError):
            raise error
        return None, error
    finally:
        if reservation is None and deferred is not None and deferred.outcome is not None:
            reservation = deferred.outcome.value  # interrupted once it was read (or None)
        if not settled and reservation is None:  # deferred, never confirmed: not sent
            services.limiter.release(permit)  # (the driver gives back what it holds)
        elif not settled and in_flight is None and not sent:  # never asked: give it back
            services.limiter.release(permit)
            services.settle_on_close(Release(reservation))
        elif not settled:  # cancelled or interrupted: charge what may have been billed
            if in_flight is None:  # the answer never came
                charge = worst_case(request, "cancelled after it was sent")
                in_flight = settlement(price, "error", charge, 0.0, "Cancelled")
            # Written after any settlement already under way, which wins if it lands.
            services.settle_on_close(Settle(reservation, **in_flight))


def _refused(walk: Walk, name: str, error: BaseException) -> None:
    """Note a reservation's refusal as the skip it is (free providers go on when the
    ledger is down); an error of another kind is raised."""
    if isinstance(error, LLMLedgerUnavailableError):
        walk.skip(name, "ledger_unavailable", error)
    elif isinstance(error, LLMQuotaExceededError):
        walk.skip(name, "over_budget", error)
    else:
        raise error
    walk.budget_refusals.append(error)


def _settle(
    reservation: Reservation, settlement: dict[str, Any]
) -> Generator[Settle, Outcome, None]:
    done = yield Settle(reservation, **settlement)
    if done.error is not None:
        raise done.error
