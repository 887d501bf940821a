"""``leadfactory-llm costs`` shows the billed tokens beside the dollars, from either ledger.

Rows are written through the ledger's own writes with known billings (the SQLite file
and a PostgreSQL schema of the test's own); ``costs --by model`` and ``--by caller``
must sum them the same way, in the table and in ``--json``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from leadfactory.llm.cli import main
from leadfactory.llm.ledger import Billing, Budget, CostLedger, Ledger

NOON = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
BUDGET = Budget(max_cost_per_request=None, daily_limit=None, monthly_limit=None)
BILLED = ("input_tokens", "cache_read_tokens", "cache_write_tokens", "output_tokens")


def settle(ledger: Ledger, provider: str, model: str, caller: str, billing: Billing) -> None:
    reservation = ledger.reserve(
        request_id=f"r-{caller}",
        provider=provider,
        model=model,
        estimated_usd=0.05,
        budget=BUDGET,
        caller=caller,
    )
    prompt = billing.input_tokens + billing.cache_read_tokens + billing.cache_write_tokens
    cost = (
        billing.input_tokens * billing.input_cost_per_token
        + billing.cache_read_tokens * billing.cache_read_cost_per_token
        + billing.cache_write_tokens * billing.cache_write_cost_per_token
        + billing.output_tokens * billing.output_cost_per_token
    )
    ledger.settle(
        reservation,
        outcome="success",
        cost_usd=cost,
        prompt_tokens=prompt,
        completion_tokens=billing.output_tokens,
        billing=billing,
    )


def fill(ledger: Ledger) -> None:
    gpt = dict(
        input_cost_per_token=2.5e-6,
        output_cost_per_token=1e-5,
        cache_read_cost_per_token=1.25e-6,
        cache_write_cost_per_token=2.5e-6,
        price_source="litellm_map",
    )
    claude = dict(
        input_cost_per_token=3e-6,
        output_cost_per_token=1.5e-5,
        cache_read_cost_per_token=3e-7,
        cache_write_cost_per_token=3.75e-6,
        price_source="litellm_map",
    )
    settle(ledger, "openai", "gpt-4o", "enrich", Billing(800, 1200, 0, 500, 300, **gpt))
    settle(ledger, "openai", "gpt-4o", "enrich", Billing(1000, 0, 0, 100, 0, **gpt))
    settle(
        ledger, "anthropic", "claude-sonnet-4-5", "score", Billing(100, 2000, 1000, 400, **claude)
    )
    ledger.record_cache_hit(  # billed nothing: its tokens are not in the billed sums
        request_id="hit",
        provider="openai",
        model="gpt-4o",
        saved_usd=0.001,
        prompt_tokens=1000,
        completion_tokens=100,
        latency_ms=0.3,
        caller="score",
    )


# 800 x 2.5e-6 + 1200 x 1.25e-6 + 500 x 1e-5  +  1000 x 2.5e-6 + 100 x 1e-5
GPT_COST = 800 * 2.5e-6 + 1200 * 1.25e-6 + 500 * 1e-5 + 1000 * 2.5e-6 + 100 * 1e-5  # 0.012
# 100 x 3e-6 + 2000 x 3e-7 + 1000 x 3.75e-6 + 400 x 1.5e-5
CLAUDE_COST = 100 * 3e-6 + 2000 * 3e-7 + 1000 * 3.75e-6 + 400 * 1.5e-5  # 0.01065


@pytest.fixture(params=["sqlite", "postgres"])
def ledger_arg(request, tmp_path) -> str:
    """The ``--ledger`` value of a ledger filled by :func:`fill`."""
    if request.param == "sqlite":
        path = tmp_path / "ledger.db"
        with CostLedger(path, clock=lambda: NOON) as ledger:
            fill(ledger)
        return str(path)
    from leadfactory.llm.ledger.postgres import PostgresLedger

    url = request.getfixturevalue("postgres_url")
    with PostgresLedger(url, clock=lambda: NOON) as ledger:
        fill(ledger)
    return url


def costs(ledger_arg: str, by: str, capsys, *, as_json: bool = True):
    assert (
        main(["costs", "--ledger", ledger_arg, "--by", by, *(["--json"] if as_json else [])]) == 0
    )
    out = capsys.readouterr().out
    return json.loads(out) if as_json else out


def test_costs_by_model_sums_the_billed_tokens(ledger_arg, capsys):
    rows = {row["model"]: row for row in costs(ledger_arg, "model", capsys)}
    gpt, claude = rows["gpt-4o"], rows["claude-sonnet-4-5"]
    assert tuple(gpt[k] for k in BILLED) == (1800, 1200, 0, 600)
    assert gpt["reasoning_tokens"] == 300
    assert (gpt["calls"], gpt["cache_hits"], gpt["prompt_tokens"]) == (3, 1, 4000)
    assert abs(gpt["cost_usd"] - GPT_COST) <= 1e-6  # costs rounds to 6 places
    assert tuple(claude[k] for k in BILLED) == (100, 2000, 1000, 400)
    assert abs(claude["cost_usd"] - CLAUDE_COST) <= 1e-6


def test_costs_by_caller_sums_the_billed_tokens(ledger_arg, capsys):
    rows = {row["caller"]: row for row in costs(ledger_arg, "caller", capsys)}
    assert set(rows) == {"enrich", "score"}
    assert tuple(rows["enrich"][k] for k in BILLED) == (1800, 1200, 0, 600)
    assert tuple(rows["score"][k] for k in BILLED) == (100, 2000, 1000, 400)
    assert rows["score"]["cache_hits"] == 1 and rows["score"]["saved_usd"] == 0.001
    assert abs(rows["enrich"]["cost_usd"] - GPT_COST) <= 1e-6


@pytest.mark.parametrize("by", ["model", "caller"])
def test_the_table_shows_the_tokens_beside_the_dollars(ledger_arg, by, capsys):
    table = costs(ledger_arg, by, capsys, as_json=False)
    header, _, *lines = table.split("\n\n")[0].splitlines()
    columns = header.split()
    assert columns[-6:] == [*BILLED, "cost_usd", "saved_usd"]
    name = "gpt-4o" if by == "model" else "enrich"
    row = next(line for line in lines if f" {name} " in f" {line} ").split()
    assert row[-6:-2] == ["1800", "1200", "0", "600"]
    assert row[-2] == f"{GPT_COST:.6f}"
