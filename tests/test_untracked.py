"""UntrackedLedger (LLM_COST_TRACKING=false): CostLedger's public surface, recording nothing."""

from __future__ import annotations

import inspect
from datetime import UTC, datetime
from typing import Any

import pytest

from leadfactory.llm import LLMClient, LLMQuotaExceededError
from leadfactory.llm.ledger import Budget, CostLedger, Reserve, Settle, UntrackedLedger

USER = [{"role": "user", "content": "Hi"}]
PUBLIC = sorted(  # its own methods and those it has from the Ledger protocol
    name
    for name in dir(CostLedger)
    if (not name.startswith("_") or name in ("__enter__", "__exit__"))
    and callable(getattr(CostLedger, name))
)


def test_public_surface_matches_the_ledger():
    assert {"reserve", "settle", "release", "record_cache_hit", "write", "rows"} <= set(PUBLIC)
    untracked = UntrackedLedger()
    for name in PUBLIC:
        assert hasattr(untracked, name), f"UntrackedLedger lacks {name}"
        real = inspect.signature(getattr(CostLedger, name))
        args, kwargs = [], {}
        for parameter in list(real.parameters.values())[1 if name != "default_path" else 0 :]:
            if parameter.kind is parameter.VAR_POSITIONAL:
                continue
            if parameter.kind is parameter.POSITIONAL_OR_KEYWORD:
                args.append(None)
            elif parameter.kind is parameter.KEYWORD_ONLY:
                kwargs[parameter.name] = None
        # every call CostLedger accepts, UntrackedLedger accepts too
        inspect.signature(getattr(untracked, name)).bind(*args, **kwargs)


def summarise(ledger: Any) -> dict[str, Any]:
    """Code written against ``client.ledger``, as a user would write it."""
    since = datetime(2000, 1, 1, tzinfo=UTC)
    return {
        "today": ledger.spend(),
        "month_openai": ledger.spend(period="month", provider="openai"),
        "rows": ledger.rows(since=since, limit=10),
        "alerts": ledger.alerts(),
        "summary": ledger.provider_summary(),
    }


def test_code_against_client_ledger_works_with_tracking_off(sim_env, monkeypatch):
    monkeypatch.setenv("LLM_COST_TRACKING", "false")
    with LLMClient() as client:
        response = client.chat_completion(USER, model="openai", max_tokens=5)
        assert response["cost"] > 0
        ledger = client.ledger
        assert isinstance(ledger, UntrackedLedger) and ledger.path is None
        assert summarise(ledger) == {
            "today": 0.0,
            "month_openai": 0.0,
            "rows": [],
            "alerts": [],
            "summary": {},
        }
        with ledger as same:
            assert same is ledger
        client.reset_cost_tracking()
    with pytest.raises(ValueError, match="period"):
        UntrackedLedger().spend(period="week")


def test_the_same_code_works_with_tracking_on(sim_env):
    with LLMClient() as client:
        client.chat_completion(USER, model="openai", max_tokens=5)
        assert isinstance(client.ledger, CostLedger)
        answer = summarise(client.ledger)
    assert answer["today"] > 0 and len(answer["rows"]) == 1
    assert set(answer["summary"]) == {"openai"}


def test_the_per_request_cap_still_holds():
    ledger = UntrackedLedger()
    budget = Budget(max_cost_per_request=0.01, daily_limit=0.001, monthly_limit=0.001)
    reservation = ledger.reserve(
        request_id="r1", provider="openai", model="gpt-4", estimated_usd=0.005, budget=budget
    )  # over the daily limit, which is not counted; under the cap
    assert reservation.estimated_usd == 0.005
    ledger.settle(reservation, outcome="success", cost_usd=0.005)
    with pytest.raises(LLMQuotaExceededError, match="max_cost_per_request"):
        ledger.check(provider="openai", estimated_usd=0.02, budget=budget)
    over = {"request_id": "r2", "provider": "openai", "model": "gpt-4", "budget": budget}
    results = ledger.run_batch(
        [
            Reserve(**over, estimated_usd=0.02),
            Settle(reservation, outcome="success"),
            "drop_table",
        ]
    )
    assert isinstance(results[0], LLMQuotaExceededError)
    assert results[1] is None and isinstance(results[2], TypeError)
    assert ledger.rows() == [] and ledger.spend() == 0.0
