"""The fallback loop's decisions, driven alone: scripted provider outcomes, a fake clock.

No simulator, no network, no LiteLLM: :func:`fallback_flow` is a generator that asks
for work; :class:`Script` performs it from a script (each provider's outcomes in
order) and records what was asked. The one place that knows the operation types is
:meth:`Script.perform`, so a new kind of operation is adapted there.
"""

from __future__ import annotations

import dataclasses
import errno
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from leadfactory.llm import providers
from leadfactory.llm.config import CostConfig, LLMConfig, ProviderConfig
from leadfactory.llm.exceptions import (
    AllProvidersFailedError,
    LLMConnectionError,
    LLMProviderError,
    LLMQuotaExceededError,
    LLMRateLimitError,
    LLMValidationError,
)
from leadfactory.llm.flow import Call, Outcome, Request, Services, Sleep, fallback_flow
from leadfactory.llm.health import HealthPolicy, ProviderHealth
from leadfactory.llm.ledger import Budget, LedgerWrite, Release, Reservation, Reserve, Settle
from leadfactory.llm.provider_config import ModelPrice
from leadfactory.llm.ratelimit import RateLimiter
from tests.conftest import child_environment

PROMPT_TOKENS = 10
MAX_TOKENS = 20


# -- the script ----------------------------------------------------------------------


class FakeClock:
    """Monotonic seconds that move only when the flow asks to sleep."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def answer(text: str = "ok", prompt: int = PROMPT_TOKENS, completion: int = 5) -> dict[str, Any]:
    """A provider's answer as the driver hands it to the flow (OpenAI shape)."""
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}}],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        },
    }


def http_error(status: int, code: str | None = None, retry_after: str | None = None) -> Exception:
    """What LiteLLM raises for an HTTP error status, reduced to what classify reads."""
    error = Exception(f"HTTP {status}")
    error.status_code = status  # type: ignore[attr-defined]
    if code is not None:
        error.body = {"error": {"code": code, "message": code}}  # type: ignore[attr-defined]
    if retry_after is not None:
        error.headers = {"retry-after": retry_after}  # type: ignore[attr-defined]
    return error


def refused() -> Exception:
    return ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")


@dataclass
class FakeLedger:
    """Reservations and settlements, kept in memory; refuses paid work when ``broke``."""

    broke: bool = False
    reserved: list[dict[str, Any]] = field(default_factory=list)
    settled: list[dict[str, Any]] = field(default_factory=list)

    def reserve(self, *, provider: str, estimated_usd: float, **row: Any) -> Reservation:
        if self.broke and estimated_usd > 0:
            raise LLMQuotaExceededError(f"{provider}: daily budget spent", provider=provider)
        self.reserved.append({"provider": provider, "estimated_usd": estimated_usd, **row})
        return Reservation(len(self.reserved), row["request_id"], provider, estimated_usd)

    def settle(self, reservation: Reservation, **row: Any) -> None:
        self.settled.append({"provider": reservation.provider, **row})

    def release(self, reservation: Reservation, **row: Any) -> None:
        self.settled.append({"provider": reservation.provider, "outcome": "released", **row})

    def write(self, write: LedgerWrite) -> Any:
        """Dispatch a typed write from the flow to the methods above."""
        fields = {f.name: getattr(write, f.name) for f in dataclasses.fields(write)}
        if isinstance(write, Reserve):
            return self.reserve(**fields)
        if isinstance(write, Settle | Release):
            method = self.settle if isinstance(write, Settle) else self.release
            return method(**fields)
        raise AssertionError(f"the flow does not write {write!r}")


@dataclass
class Script:
    """Plays the providers, the ledger and the clock for the flow."""

    outcomes: dict[str, list[dict[str, Any] | BaseException]]
    clock: FakeClock = field(default_factory=FakeClock)
    ledger: FakeLedger = field(default_factory=FakeLedger)
    calls: list[str] = field(default_factory=list)
    sleeps: list[float] = field(default_factory=list)

    def perform(self, operation: Any) -> Outcome | None:
        if isinstance(operation, Sleep):
            self.sleeps.append(operation.seconds)
            self.clock.now += operation.seconds
            return None
        if isinstance(operation, Call):
            self.calls.append(operation.provider)
            self.clock.now += 0.25  # every call takes a quarter of a second
            result = self.outcomes[operation.provider].pop(0)
            if isinstance(result, BaseException):
                return Outcome(error=result)
            return Outcome(response=result)
        if isinstance(operation, LedgerWrite):
            try:
                return Outcome(value=self.ledger.write(operation))
            except Exception as error:
                return Outcome(error=error)
        raise AssertionError(f"unexpected operation {operation!r}")

    def run(self, services: Services, request: Request | None = None) -> dict[str, Any]:
        flow = fallback_flow(services, request or make_request())
        send: Outcome | None = None
        while True:
            try:
                operation = flow.send(send)  # type: ignore[arg-type]
            except StopIteration as done:
                return done.value
            send = self.perform(operation)


def make_request(**changes: Any) -> Request:
    values: dict[str, Any] = {
        "request_id": "r1",
        "messages": [{"role": "user", "content": "hi"}],
        "params": {"max_tokens": MAX_TOKENS},
        "max_tokens": MAX_TOKENS,
        "prompt_tokens": PROMPT_TOKENS,
    }
    return Request(**{**values, **changes})


PROVIDERS: dict[str, dict[str, Any]] = {
    "ollama": {"default_model": "llama3", "base_url": "http://h", "priority": 1},
    "openai": {"default_model": "gpt", "api_key": "k", "priority": 2, "cost_per_1k_tokens": 0.03},
    "anthropic": {
        "default_model": "claude",
        "api_key": "k",
        "priority": 3,
        "cost_per_1k_tokens": 0.015,
    },
    "custom": {"default_model": "m", "api_key": "k", "priority": 2, "cost_per_1k_tokens": 0.01},
}


def arguments_for(provider: ProviderConfig, messages: Any, **_: Any) -> dict[str, Any]:
    return {"model": provider.default_model, "messages": list(messages)}


def services(
    script: Script,
    names: tuple[str, ...] = ("ollama", "openai", "anthropic", "custom"),
    health: ProviderHealth | None = None,
    limiter: RateLimiter | None = None,
    retries: int = 0,
    **settings: Any,
) -> Services:
    providers_ = {
        name: ProviderConfig(name=name, max_retries=retries, retry_delay=0.5, **PROVIDERS[name])
        for name in names
    }
    settings.setdefault("fallback_strategy", "round_robin")  # the order of ``names``
    config = LLMConfig(providers=providers_, cost_config=CostConfig(), **settings)
    return Services(
        config=config,
        limiter=limiter or RateLimiter(clock=script.clock),
        health=health or ProviderHealth(HealthPolicy(failure_threshold=1), clock=script.clock),
        ledger=script.ledger,
        budget=Budget(),
        timer=script.clock,
        log=lambda **_: None,
        count_tokens=lambda messages: PROMPT_TOKENS,
        arguments_for=arguments_for,
    )


@pytest.fixture(autouse=True)
def no_litellm(monkeypatch: pytest.MonkeyPatch) -> None:
    """The flow never asks for LiteLLM (the subprocess test checks the import itself)."""

    def forbidden() -> None:
        raise AssertionError("the flow loaded LiteLLM")

    monkeypatch.setattr(providers, "load_litellm", forbidden)


# -- order -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("strategy", "order"),
    [
        ("smart_fallback", ["ollama", "anthropic", "openai", "custom"]),
        ("cost_optimized", ["ollama", "custom", "anthropic", "openai"]),
        ("quality_optimized", ["anthropic", "openai", "custom", "ollama"]),
        ("round_robin", ["ollama", "openai", "anthropic", "custom"]),
    ],
)
def test_each_strategy_walks_its_order(strategy, order):
    script = Script({name: [http_error(400)] for name in order})
    with pytest.raises(AllProvidersFailedError) as caught:
        script.run(services(script, fallback_strategy=strategy, max_fallback_attempts=4))
    assert script.calls == order
    assert list(caught.value.provider_errors) == order
    assert [a["provider"] for a in caught.value.metadata["attempts"]] == order


def price(input: float, output: float) -> ModelPrice:
    return ModelPrice(input_cost_per_token=input, output_cost_per_token=output)


def test_cost_optimized_ranks_by_the_request_at_hand():
    script = Script({"openai": [answer(), answer()], "anthropic": [answer(), answer()]})
    flow_services = services(script, ("openai", "anthropic"), fallback_strategy="cost_optimized")
    providers_ = flow_services.config.providers
    # openai's model is dear to read and cheap to write; anthropic's the other way round
    providers_["openai"].model_prices = {"gpt": price(input=4e-6, output=1e-6)}
    providers_["anthropic"].model_prices = {"claude": price(input=0.1e-6, output=10e-6)}
    script.run(flow_services, make_request(prompt_tokens=10_000, max_tokens=100))
    script.run(flow_services, make_request(prompt_tokens=100, max_tokens=10_000))
    assert script.calls == ["anthropic", "openai"]


def test_the_first_answer_ends_the_walk():
    script = Script({"openai": [http_error(400)], "anthropic": [answer("from anthropic")]})
    response = script.run(services(script, ("openai", "anthropic")))
    assert script.calls == ["openai", "anthropic"]
    assert response["provider"] == "anthropic"
    assert response["choices"][0]["message"]["content"] == "from anthropic"
    assert response["cost"] == pytest.approx(15 / 1000 * 0.015)
    assert [(a["provider"], a["outcome"], a["error"]) for a in response["attempts"]] == [
        ("openai", "error", "LLMValidationError"),
        ("anthropic", "success", None),
    ]
    assert response["attempts"][1]["ms"] == 250.0
    assert [(r["provider"], r["outcome"]) for r in script.ledger.settled] == [
        ("openai", "error"),
        ("anthropic", "success"),
    ]


def test_fail_fast_raises_the_first_error_and_calls_no_other():
    script = Script({"ollama": [http_error(400)]})
    with pytest.raises(LLMValidationError) as caught:
        script.run(services(script, fallback_strategy="fail_fast"))
    assert not isinstance(caught.value, AllProvidersFailedError)
    assert caught.value.provider == "ollama"
    assert script.calls == ["ollama"]


def test_fail_fast_tries_the_next_provider_when_the_first_is_skipped():
    script = Script({"openai": [http_error(503)]})
    flow_services = services(script, ("ollama", "openai"), fallback_strategy="fail_fast")
    flow_services.health.record_failure("ollama", LLMConnectionError("down"))
    with pytest.raises(LLMProviderError) as caught:
        script.run(flow_services)
    assert caught.value.provider == "openai"
    assert script.calls == ["openai"]


# -- retries ---------------------------------------------------------------------------


def test_a_retryable_error_is_retried_after_the_backoff_sleeps():
    script = Script({"openai": [http_error(503), http_error(503), answer()]})
    response = script.run(services(script, ("openai", "anthropic"), retries=3))
    assert script.calls == ["openai"] * 3
    # retry_delay 0.5: 0.5 x 2**n plus up to 0.5 of jitter
    assert len(script.sleeps) == 2
    assert 0.5 <= script.sleeps[0] <= 1.0
    assert 1.0 <= script.sleeps[1] <= 1.5
    assert [a["outcome"] for a in response["attempts"]] == ["error", "error", "success"]
    assert [r["outcome"] for r in script.ledger.settled] == ["error", "error", "success"]


def test_retries_stop_at_max_retries_then_the_next_provider_answers():
    script = Script({"openai": [http_error(503)] * 3, "anthropic": [answer()]})
    flow_services = services(script, ("openai", "anthropic"), retries=2, max_fallback_attempts=2)
    response = script.run(flow_services)
    assert script.calls == ["openai"] * 3 + ["anthropic"]
    assert len(script.sleeps) == 2
    assert response["provider"] == "anthropic"


def test_a_validation_error_is_not_retried():
    script = Script({"openai": [http_error(400)], "anthropic": [answer()]})
    script.run(services(script, ("openai", "anthropic"), retries=3))
    assert script.calls == ["openai", "anthropic"]
    assert script.sleeps == []


def test_a_refused_connection_fails_over_at_once():
    script = Script({"openai": [refused()], "anthropic": [answer()]})
    response = script.run(services(script, ("openai", "anthropic"), retries=3))
    assert script.calls == ["openai", "anthropic"]
    assert script.sleeps == []
    assert response["attempts"][0]["error"] == "LLMConnectionError"


def test_a_refused_connection_on_the_last_provider_is_retried():
    script = Script({"openai": [refused(), answer()]})
    response = script.run(services(script, ("openai",), retries=1))
    assert script.calls == ["openai", "openai"]
    assert len(script.sleeps) == 1
    assert response["provider"] == "openai"


# -- skips -----------------------------------------------------------------------------


def test_disabled_and_keyless_providers_are_never_called():
    script = Script({"anthropic": [answer()]})
    flow_services = services(script, ("ollama", "openai", "anthropic"))
    flow_services.config.providers["ollama"].enabled = False
    flow_services.config.providers["openai"].api_key = None
    response = script.run(flow_services)
    assert script.calls == ["anthropic"]
    assert [(a["provider"], a["outcome"], a.get("reason")) for a in response["attempts"]] == [
        ("openai", "skipped", "unavailable"),
        ("anthropic", "success", None),
    ]


def test_a_provider_cooling_down_is_skipped_until_its_cooldown_ends():
    script = Script({"ollama": [answer("probe")], "openai": [answer("fallback")]})
    flow_services = services(script, ("ollama", "openai"), cooldown_seconds=30)
    flow_services.health.record_failure("ollama", LLMConnectionError("down"))
    response = script.run(flow_services)
    assert script.calls == ["openai"]
    assert response["attempts"][0] == {
        "provider": "ollama",
        "outcome": "skipped",
        "reason": "cooling_down",
        "error": "LLMConnectionError",
        "detail": response["attempts"][0]["detail"],
        "ms": 0.0,
    }
    script.clock.now += 31  # the cooldown (30 s by the health policy) is over: a probe
    assert script.run(flow_services)["provider"] == "ollama"


def test_skipped_providers_do_not_count_towards_max_fallback_attempts():
    names = ("ollama", "openai", "anthropic", "custom")
    script = Script({"openai": [http_error(400)], "anthropic": [http_error(400)]})
    flow_services = services(script, names)
    flow_services.config.max_fallback_attempts = 2
    flow_services.health.record_failure("ollama", LLMConnectionError("down"))
    with pytest.raises(AllProvidersFailedError) as caught:
        script.run(flow_services)
    assert script.calls == ["openai", "anthropic"]  # custom would be a third try
    assert list(caught.value.provider_errors) == ["ollama", "openai", "anthropic"]
    assert [a["outcome"] for a in caught.value.metadata["attempts"]] == [
        "skipped",
        "error",
        "error",
    ]


def test_all_providers_failed_names_each_error_and_keeps_every_attempt():
    script = Script({"openai": [http_error(401)], "anthropic": [http_error(503)] * 2})
    with pytest.raises(AllProvidersFailedError) as caught:
        script.run(services(script, ("openai", "anthropic"), retries=1))
    error = caught.value
    assert {n: type(e).__name__ for n, e in error.provider_errors.items()} == {
        "openai": "LLMAuthenticationError",
        "anthropic": "LLMProviderError",
    }
    assert error.provider_errors["anthropic"].status_code == 503
    assert "openai: LLMAuthenticationError" in str(error)
    assert "anthropic: LLMProviderError" in str(error)
    assert [(a["provider"], a["error"]) for a in error.metadata["attempts"]] == [
        ("openai", "LLMAuthenticationError"),
        ("anthropic", "LLMProviderError"),
        ("anthropic", "LLMProviderError"),
    ]


def test_no_enabled_provider_is_a_clear_error():
    script = Script({})
    flow_services = services(script, ("openai",))
    flow_services.config.providers["openai"].enabled = False
    with pytest.raises(AllProvidersFailedError, match="every configured provider is disabled"):
        script.run(flow_services)


# -- budgets ---------------------------------------------------------------------------


def test_a_spent_budget_leaves_only_free_providers():
    script = Script({"ollama": [answer()]}, ledger=FakeLedger(broke=True))
    response = script.run(services(script, fallback_strategy="quality_optimized"))
    assert script.calls == ["ollama"]
    assert [(a["provider"], a["outcome"], a.get("reason")) for a in response["attempts"]] == [
        ("anthropic", "skipped", "over_budget"),
        ("openai", "skipped", "over_budget"),
        ("custom", "skipped", "over_budget"),
        ("ollama", "success", None),
    ]
    assert response["cost"] == 0.0
    assert [r["provider"] for r in script.ledger.reserved] == ["ollama"]


def test_a_spent_budget_with_no_free_provider_raises_the_refusal():
    script = Script({}, ledger=FakeLedger(broke=True))
    with pytest.raises(LLMQuotaExceededError, match="daily budget spent"):
        script.run(services(script, ("openai", "anthropic")))
    assert script.calls == []


def test_the_reservation_holds_the_worst_case_estimate():
    script = Script({"openai": [answer()]})
    script.run(services(script, ("openai",)))
    (row,) = script.ledger.reserved
    assert row["estimated_usd"] == pytest.approx((PROMPT_TOKENS + MAX_TOKENS) / 1000 * 0.03)
    assert row["model"] == "gpt"


def cached_answer(prompt: int, cached: int, completion: int) -> dict[str, Any]:
    response = answer(prompt=prompt, completion=completion)
    response["usage"]["prompt_tokens_details"] = {"cached_tokens": cached}
    return response


def split_priced(script: Script) -> Services:
    flow_services = services(script, ("openai",))
    flow_services.config.providers["openai"].model_prices = {
        "gpt": ModelPrice(
            input_cost_per_token=2e-6, output_cost_per_token=8e-6, cache_read_cost_per_token=5e-7
        )
    }
    return flow_services


def test_an_answer_is_charged_at_its_models_split_price():
    script = Script({"openai": [cached_answer(prompt=1000, cached=400, completion=200)]})
    response = script.run(split_priced(script), make_request(prompt_tokens=900, max_tokens=300))
    # 600 uncached x 2e-6 + 400 cached x 5e-7 + 200 x 8e-6 = 0.0012 + 0.0002 + 0.0016
    assert abs(response["cost"] - 0.003) <= 1e-12
    [settled] = script.ledger.settled
    assert settled["cost_usd"] == response["cost"] and settled["estimated"] is False
    # the worst case, reserved: 900 x 2e-6 + 300 x 8e-6 = 0.0018 + 0.0024
    assert abs(script.ledger.reserved[0]["estimated_usd"] - 0.0042) <= 1e-12
    assert response["usage"]["prompt_tokens_details"] == {"cached_tokens": 400}


def test_more_cached_than_prompt_tokens_is_clamped_and_marked_estimated():
    script = Script({"openai": [cached_answer(prompt=1000, cached=1500, completion=200)]})
    response = script.run(split_priced(script), make_request(prompt_tokens=900, max_tokens=300))
    # clamped to 1000 cached: 1000 x 5e-7 + 200 x 8e-6 = 0.0005 + 0.0016
    assert abs(response["cost"] - 0.0021) <= 1e-12
    [settled] = script.ledger.settled
    assert settled["cost_usd"] == response["cost"] and settled["estimated"] is True


# -- rate limits -----------------------------------------------------------------------


def limited(script: Script, rpm: int | None = None, tpm: int | None = None) -> RateLimiter:
    limiter = RateLimiter(clock=script.clock)
    limiter.configure("openai", rpm=rpm, tpm=tpm)
    return limiter


def test_a_rate_limited_provider_is_waited_for_within_rate_limit_max_wait():
    script = Script({"openai": [answer("first"), answer("second")]})
    flow_services = services(
        script, ("openai",), limiter=limited(script, rpm=1), rate_limit_max_wait=120
    )
    script.run(flow_services)
    assert script.run(flow_services)["choices"][0]["message"]["content"] == "second"
    assert script.calls == ["openai", "openai"]
    assert script.sleeps == [pytest.approx(60.0 - 0.25)]  # the window, less the first call


def test_a_wait_longer_than_rate_limit_max_wait_raises_with_retry_after():
    script = Script({"openai": [answer()]})
    flow_services = services(
        script, ("openai",), limiter=limited(script, rpm=1), rate_limit_max_wait=10
    )
    script.run(flow_services)
    with pytest.raises(LLMRateLimitError) as caught:
        script.run(flow_services)
    assert caught.value.retry_after == pytest.approx(60.0 - 0.25)
    assert caught.value.metadata["providers"] == ["openai"]
    assert script.calls == ["openai"]
    assert script.sleeps == []


def test_a_rate_limited_provider_is_passed_over_for_one_that_is_free_now():
    script = Script({"openai": [answer()], "anthropic": [answer()]})
    limiter = limited(script, rpm=1)
    flow_services = services(script, ("openai", "anthropic"), limiter=limiter)
    script.run(flow_services)
    response = script.run(flow_services)
    assert script.calls == ["openai", "anthropic"]
    assert response["attempts"][0]["reason"] == "rate_limited"
    assert script.sleeps == []


def test_a_request_larger_than_the_token_limit_is_skipped_without_waiting():
    script = Script({})
    flow_services = services(
        script, ("openai",), limiter=limited(script, tpm=PROMPT_TOKENS), rate_limit_max_wait=600
    )
    with pytest.raises(AllProvidersFailedError) as caught:
        script.run(flow_services)
    assert script.calls == []
    assert script.sleeps == []
    assert caught.value.metadata["attempts"][0]["reason"] == "too_large"
    assert isinstance(caught.value.provider_errors["openai"], LLMValidationError)


def test_a_provider_retry_after_pauses_it_for_the_next_request():
    script = Script({"openai": [http_error(429, retry_after="2"), answer()]})
    flow_services = services(script, ("openai",), rate_limit_max_wait=10)
    with pytest.raises(AllProvidersFailedError) as caught:
        script.run(flow_services)
    assert caught.value.provider_errors["openai"].retry_after == 2.0
    response = script.run(flow_services)
    assert script.calls == ["openai", "openai"]
    assert script.sleeps == [2.0]  # the pause, counted from the 429 answer
    assert response["provider"] == "openai"


# -- no LiteLLM ------------------------------------------------------------------------


def test_the_flow_runs_without_importing_litellm(tmp_path):
    """In a fresh interpreter (this one may have LiteLLM from other tests)."""
    code = textwrap.dedent(
        """
        import sys
        from tests import test_flow as t
        t.test_a_retryable_error_is_retried_after_the_backoff_sleeps()
        t.test_a_spent_budget_leaves_only_free_providers()
        assert "litellm" not in sys.modules, "the flow imported litellm"
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=Path(__file__).resolve().parent.parent,
        env=child_environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
