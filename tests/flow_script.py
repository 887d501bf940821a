"""Driving the fallback loop alone: scripted provider outcomes, a fake clock, a ledger in memory.

No simulator, no network, no LiteLLM: :func:`fallback_flow` is a generator that asks
for work; :class:`Script` performs it from a script (each provider's outcomes in
order) and records what was asked. The one place that knows the operation types is
:meth:`Script.perform`, so a new kind of operation is adapted there. ``services``
builds the flow's collaborators around a script, and the autouse ``no_litellm`` fixture
fails any test whose flow asks for LiteLLM: a module driving the flow imports it.
Used by tests/test_flow*.py, tests/test_fit.py, tests/test_charges.py and
tests/test_stream_units.py.
"""

from __future__ import annotations

import dataclasses
import errno
from dataclasses import dataclass, field
from typing import Any

import pytest

from leadfactory.llm import providers
from leadfactory.llm.config import CostConfig, LLMConfig, ProviderConfig
from leadfactory.llm.exceptions import (
    LLMQuotaExceededError,
)
from leadfactory.llm.flow import Call, Outcome, Request, Services, Sleep, fallback_flow
from leadfactory.llm.health import HealthPolicy, ProviderHealth
from leadfactory.llm.ledger import Budget, LedgerWrite, Release, Reservation, Reserve, Settle
from leadfactory.llm.ratelimit import RateLimiter

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
