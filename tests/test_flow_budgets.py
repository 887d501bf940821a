"""The fallback loop under a budget, driven alone (tests/flow_script.py): what is reserved
and what is charged.

A spent budget leaves only free providers, or raises the ledger's refusal; the
reservation holds the worst-case estimate; an answer is charged at its model's split
price, and impossible usage (more cached than prompt tokens) is clamped and the charge
marked estimated.
"""

from __future__ import annotations

from typing import Any

import pytest

from leadfactory.llm.exceptions import (
    LLMQuotaExceededError,
)
from leadfactory.llm.flow import Services
from leadfactory.llm.provider_config import ModelPrice

from .flow_script import (
    MAX_TOKENS,
    PROMPT_TOKENS,
    FakeLedger,
    Script,
    answer,
    make_request,
    services,
)

# fixtures, imported so that pytest finds them in this module
from .flow_script import no_litellm as no_litellm

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
