"""The sync client's PostgreSQL reservation, read just before the request leaves.

The driver sends the reservation, LiteLLM builds the request meanwhile, and the
transport reads the reservation's answer before the first byte goes out
(:mod:`leadfactory.llm.deferred`). These tests hold what must not change: no request
leaves before its reservation is committed and checked, a refused or unreadable one
stops the request there, and every row ends settled or given back.
"""

from __future__ import annotations

import psycopg
import pytest
from prometheus_client import CollectorRegistry

from leadfactory.llm import (
    LLMClient,
    LLMConfig,
    LLMLedgerUnavailableError,
    LLMQuotaExceededError,
    providers,
)
from leadfactory.llm.ledger import postgres_pending
from leadfactory.llm.ledger.postgres import PostgresLedger
from leadfactory.llm.ledger.postgres_pool import PostgresConnections
from leadfactory.llm.telemetry import Telemetry

from .openai_only import config as config  # a fixture
from .span_capture import split
from .span_capture import traced as traced  # a fixture

WORST_CASE = 0.0012  # USD: a reservation's estimate for a short prompt, max_tokens=100


@pytest.fixture
def ledger(postgres_url):
    ledger = PostgresLedger(postgres_url)
    ledger.rows()  # the schema is checked: from now on a reservation may start early
    yield ledger
    ledger.close()


@pytest.fixture
def reads(sim, monkeypatch) -> list[tuple[bool, int]]:
    """Each reservation read from a pending start: (inside the provider call, how many
    requests the simulator had received by then, from any provider)."""
    seen: list[tuple[bool, int]] = []
    calling: list[bool] = []
    complete, result = providers.complete, postgres_pending.PendingReservation.result

    def in_call(*args, **kwargs):
        calling.append(True)
        try:
            return complete(*args, **kwargs)
        finally:
            calling.pop()

    def spied(pending):
        if pending._conn is not None:  # the first read
            received = sum(sim.request_count(name) for name in ("openai", "anthropic", "ollama"))
            seen.append((bool(calling), received))
        return result(pending)

    monkeypatch.setattr(providers, "complete", in_call)
    monkeypatch.setattr(postgres_pending.PendingReservation, "result", spied)
    return seen


def ask(client: LLMClient, n: int = 0) -> dict:
    return client.chat_completion([{"role": "user", "content": f"Tagline {n}?"}], max_tokens=100)


def pending_rows(ledger: PostgresLedger) -> list[dict]:
    return [row for row in ledger.rows() if row["outcome"] == "pending"]


@pytest.mark.parametrize("provider", ["openai", "anthropic", "ollama"])  # each wire protocol
def test_the_request_leaves_once_its_reservation_is_read(config, ledger, reads, sim, provider):
    for name, settings in config.providers.items():
        settings.enabled = name == provider
    with LLMClient(config, ledger=ledger) as client:
        ask(client, 1)
        ask(client, 2)
        rows = ledger.rows()
    assert reads == [(True, 0), (True, 1)]  # read in the call, before the simulator had it
    assert sim.request_count(provider) == 2
    assert [row["outcome"] for row in rows] == ["success", "success"]


def test_a_reservation_refused_when_read_stops_the_request(config, ledger, reads, sim, monkeypatch):
    monkeypatch.setenv("LLM_DAILY_COST_LIMIT", str(WORST_CASE / 2))
    config = LLMConfig(enable_caching=False, providers=config.providers)
    with LLMClient(config, ledger=ledger) as client:
        with pytest.raises(LLMQuotaExceededError, match="daily"):
            ask(client)
        assert ledger.rows() == []  # withdrawn
    assert reads == [(True, 0)] and sim.request_count("openai") == 0


def test_a_connection_lost_before_the_read_stops_the_request(config, ledger, sim, monkeypatch):
    lent: list[psycopg.Connection] = []
    borrow, complete = PostgresConnections.borrow, providers.complete

    def borrowed(db):
        lent.append(borrow(db))
        return lent[-1]

    def lost_first(*args, **kwargs):  # the reservation is sent: its connection is lost
        lent[-1].close()
        return complete(*args, **kwargs)

    monkeypatch.setattr(PostgresConnections, "borrow", borrowed)
    monkeypatch.setattr(providers, "complete", lost_first)
    with LLMClient(config, ledger=ledger) as client:
        with pytest.raises(LLMLedgerUnavailableError, match="PostgreSQL ledger"):
            ask(client)
        assert lent and sim.request_count("openai") == 0  # it never left
        # Its row may have been written: it is not written twice, and counts until stale.
        assert len(pending_rows(ledger)) <= 1
        monkeypatch.undo()
        assert ask(client, 2)["cost"] > 0  # the pool replaced the connection


def test_a_flow_stopped_before_its_call_gives_the_reservation_back(config, ledger, sim):
    with LLMClient(config, ledger=ledger) as client:
        services = client._services

        def failing():
            made = services()
            made.arguments_for = boom
            return made

        def boom(*args, **kwargs):
            raise RuntimeError("arguments")

        client._services = failing  # type: ignore[method-assign]
        with pytest.raises(RuntimeError, match="arguments"):
            ask(client)
        assert pending_rows(ledger) == [] and sim.request_count("openai") == 0


def test_a_call_interrupted_after_its_reservation_was_read_is_charged(
    config, ledger, sim, monkeypatch
):
    complete = providers.complete

    def interrupted(arguments, before_send=None):
        complete(arguments, before_send)
        raise KeyboardInterrupt

    monkeypatch.setattr(providers, "complete", interrupted)
    with LLMClient(config, ledger=ledger) as client:
        with pytest.raises(KeyboardInterrupt):
            ask(client)
        (row,) = ledger.rows()
    assert row["outcome"] == "error" and row["error_class"] == "Cancelled"
    assert row["cost_usd"] == pytest.approx(WORST_CASE, rel=0.5)  # charged as sent


def test_with_telemetry_a_request_stopped_at_send_is_a_skipped_attempt(
    config, ledger, reads, sim, traced, monkeypatch
):
    provider, exporter = traced
    registry = CollectorRegistry()
    telemetry = Telemetry(traces=True, tracer_provider=provider, prometheus=True, registry=registry)
    with LLMClient(config, ledger=ledger, telemetry=telemetry) as client:
        ask(client, 1)  # answered, its reservation read as it left
        monkeypatch.setattr(client.config.cost_config, "daily_cost_limit", WORST_CASE / 2)
        with pytest.raises(LLMQuotaExceededError):
            ask(client, 2)  # refused as it was about to leave
    assert [sent for _, sent in reads] == [0, 1] and sim.request_count("openai") == 1
    spans = sorted(exporter.get_finished_spans(), key=lambda span: span.start_time)
    calls, attempts = split(spans)
    assert len(calls) == 2
    answered, stopped = attempts
    assert answered.attributes["leadfactory.llm.attempt.outcome"] == "success"
    assert stopped.attributes["leadfactory.llm.attempt.outcome"] == "skipped"
    assert stopped.attributes["leadfactory.llm.skip.reason"] == "over_budget"
    assert stopped.attributes["leadfactory.llm.retry"] == 0
    refusals = [
        sample.value
        for family in registry.collect()
        for sample in family.samples
        if sample.name == "leadfactory_llm_budget_refusals_total"
    ]
    assert refusals == [1.0]  # once: not as an attempt and a skip both
