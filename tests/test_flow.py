"""The fallback loop's order, driven alone (tests/flow_script.py): which provider is tried
next, and which are skipped.

Each strategy's order, the first answer ending the walk, fail-fast; disabled, keyless
and cooling-down providers skipped without counting towards max_fallback_attempts;
every provider failing, or none enabled. And the flow runs in a fresh interpreter
without importing LiteLLM. Retries and waits are in tests/test_flow_retries.py, budgets
and charges in tests/test_flow_budgets.py.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from leadfactory.llm.exceptions import (
    AllProvidersFailedError,
    LLMConnectionError,
    LLMProviderError,
    LLMValidationError,
)
from leadfactory.llm.provider_config import ModelPrice
from tests.conftest import child_environment

from .flow_script import Script, answer, http_error, make_request, services

# fixtures, imported so that pytest finds them in this module
from .flow_script import no_litellm as no_litellm

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


# -- no LiteLLM ------------------------------------------------------------------------


def test_the_flow_runs_without_importing_litellm(tmp_path):
    """In a fresh interpreter (this one may have LiteLLM from other tests)."""
    code = textwrap.dedent(
        """
        import sys
        from tests import test_flow_budgets, test_flow_retries
        test_flow_retries.test_a_retryable_error_is_retried_after_the_backoff_sleeps()
        test_flow_budgets.test_a_spent_budget_leaves_only_free_providers()
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
