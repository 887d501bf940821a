"""The cassette scenarios, and the client each is recorded and replayed with.

Each scenario names its providers in fallback order, the one that fails and how (a
simulator fault, or a bad key or missing model with the real providers), and the attempts
the client must report. tests/record_cassettes.py records them and the cassette tests
replay them: both import this module (and tests/cassette_io.py, the vcr configuration),
so recording and replay cannot drift apart.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from leadfactory.llm import LLMClient, LLMConfig, ProviderConfig
from leadfactory.llm.simulator import Fault

CASSETTES = Path(__file__).resolve().parent.parent / "cassettes"
MODES = ("sync", "async")
PROTOCOLS = ("openai", "anthropic", "ollama")

SENTINEL_KEY = "sk-SENTINEL-7f3a9c1e5b2d4068"
"""The key every simulator recording is made with; tests check it is in no cassette."""
INVALID_KEY = "sk-invalid-leadfactory-cassette-0000"
"""The key a provider that must fail with 401 is given (with the real providers too)."""


REAL_BASE_URLS = {
    "openai": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com",
    "ollama": "http://localhost:11434",
}
REPLAY_BASE_URLS: dict[str, str | None] = {
    "openai": None,  # no base URL: LiteLLM's default, https://api.openai.com/v1
    "anthropic": None,  # LiteLLM's default, https://api.anthropic.com
    "ollama": "http://localhost:11434",  # the client's built-in default
}

MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-3-5-haiku-20241022", "ollama": "llama3:8b"}
MISSING_OLLAMA_MODEL = "leadfactory-missing-model:latest"
"""A model no Ollama server has pulled: a real server answers 404."""
PRICES = {"openai": 0.03, "anthropic": 0.015, "ollama": 0.0}

PROMPT = [{"role": "user", "content": "What is the capital of France?"}]
TEMPERATURE = 0
MAX_TOKENS = 20


@dataclass(frozen=True)
class Scenario:
    """One recorded conversation: the providers in fallback order, and who fails how."""

    name: str
    providers: tuple[str, ...]  # tried in this order
    failing: str | None = None  # the first provider, made to fail
    fault: Fault | None = None  # how the simulator fails it
    status: int | None = None  # the HTTP status it fails with
    error: str | None = None  # the LLMError class the client reports for it
    retries: int = 0  # max_retries of the failing provider
    simulator_only: bool = False  # a real provider cannot be made to fail this way

    @property
    def answering(self) -> str:
        return self.providers[-1]

    @property
    def failing_attempts(self) -> int:
        return 0 if self.failing is None else 1 + self.retries

    def cassette(self, mode: str) -> Path:
        return cassette_path(self.name, mode)


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("openai_ok", ("openai",)),
    Scenario("anthropic_ok", ("anthropic",)),
    Scenario("ollama_ok", ("ollama",)),
    Scenario(
        "openai_401_falls_back_to_anthropic",
        ("openai", "anthropic"),
        failing="openai",
        fault=Fault.UNAUTHORIZED,
        status=401,
        error="LLMAuthenticationError",
    ),
    Scenario(
        "openai_500_retried_then_falls_back_to_anthropic",
        ("openai", "anthropic"),
        failing="openai",
        fault=Fault.SERVER_ERROR,
        status=500,
        error="LLMProviderError",
        retries=1,
        simulator_only=True,
    ),
    Scenario(
        "anthropic_401_falls_back_to_ollama",
        ("anthropic", "ollama"),
        failing="anthropic",
        fault=Fault.UNAUTHORIZED,
        status=401,
        error="LLMAuthenticationError",
    ),
    Scenario(
        "ollama_404_falls_back_to_openai",
        ("ollama", "openai"),
        failing="ollama",
        fault=Fault.NOT_FOUND,
        status=404,
        error="LLMModelNotFoundError",
    ),
)
SCENARIOS_BY_NAME = {s.name: s for s in SCENARIOS}


def cassette_path(name: str, mode: str) -> Path:
    return CASSETTES / mode / f"{name}.yaml"


def all_cassettes() -> list[Path]:
    return sorted(CASSETTES.glob("*/*.yaml"))


# -- the client ---------------------------------------------------------------------


def build_config(
    scenario: Scenario,
    base_urls: Mapping[str, str | None],
    keys: Mapping[str, str | None],
    models: Mapping[str, str] | None = None,
) -> LLMConfig:
    """The configuration a scenario is recorded and replayed with (only the URLs and keys
    differ): its providers in fallback order, no cache, no backoff. ``models`` overrides
    MODELS (tests use it to send a request the cassette does not hold)."""
    models = {**MODELS, **(models or {})}
    providers: dict[str, ProviderConfig] = {}
    for rank, name in enumerate(scenario.providers):
        failing = name == scenario.failing
        key = None if name == "ollama" else keys.get(name)
        if failing and scenario.fault is Fault.UNAUTHORIZED:
            key = INVALID_KEY
        model = models[name]
        if failing and scenario.fault is Fault.NOT_FOUND:
            model = MISSING_OLLAMA_MODEL if name == "ollama" else f"{model}-does-not-exist"
        providers[name] = ProviderConfig(
            name=name,
            api_key=key,
            base_url=base_urls.get(name),
            default_model=model,
            priority=len(scenario.providers) - rank,
            max_retries=scenario.retries if failing else 0,
            retry_delay=0,
            timeout=60,
            cost_per_1k_tokens=PRICES[name],
        )
    return LLMConfig(
        providers=providers,
        fallback_strategy="quality_optimized",
        max_fallback_attempts=len(providers),
        enable_caching=False,
        log_requests=False,
    )


def build_client(
    scenario: Scenario,
    base_urls: Mapping[str, str | None],
    keys: Mapping[str, str | None],
    models: Mapping[str, str] | None = None,
) -> LLMClient:
    config = build_config(scenario, base_urls, keys, models)
    return LLMClient(config, sleep=lambda _seconds: None)


def ask(client: LLMClient, mode: str, messages: Sequence[Mapping[str, Any]] = PROMPT) -> dict:
    """The scenario's request, through chat_completion or achat_completion."""
    kwargs: dict[str, Any] = {"temperature": TEMPERATURE, "max_tokens": MAX_TOKENS, "cache": False}
    if mode == "sync":
        return client.chat_completion(messages, **kwargs)
    if mode == "async":
        return asyncio.run(client.achat_completion(messages, **kwargs))
    raise ValueError(f"unknown mode {mode!r}; expected one of {MODES}")


def expected_attempts(scenario: Scenario) -> list[tuple[str, str, str | None]]:
    """(provider, outcome, error class) of every attempt the client should report."""
    failures = [(scenario.failing, "error", scenario.error)] * scenario.failing_attempts
    return [*failures, (scenario.answering, "success", None)]  # type: ignore[list-item]


def expected_generation_providers(scenario: Scenario) -> list[str]:
    return [scenario.failing] * scenario.failing_attempts + [scenario.answering]  # type: ignore[list-item]


def check_response(scenario: Scenario, response: Mapping[str, Any]) -> None:
    """Raise AssertionError unless the response is what the scenario should produce."""
    got = [(a["provider"], a["outcome"], a["error"]) for a in response["attempts"]]
    want = expected_attempts(scenario)
    if response["provider"] != scenario.answering or got != want:
        raise AssertionError(f"{scenario.name}: expected attempts {want}, got {got}")
