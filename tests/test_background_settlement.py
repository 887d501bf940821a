"""Settlements written in the background (``LLM_LEDGER_SETTLEMENT``; PostgreSQL's
default): the caller does not wait for them, and nothing it can read tells.

Each test holds the ledger's writer thread at a gate where it matters, so what the
caller sees before the settlement lands is seen for certain, not by luck of timing.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import threading
from collections.abc import Callable, Iterator

import pytest

from leadfactory.llm import LLMClient, LLMConfig, LLMLedgerUnavailableError
from leadfactory.llm.ledger import CostLedger, Ledger, Settle, writer

from .openai_only import config as config  # a fixture

WRITER = "leadfactory-ledger-writer"
LIMIT = 0.0018  # USD a day: one worst-case reservation (~$0.0012) fits, two do not


@pytest.fixture(params=["sqlite", "postgresql"])
def make_ledger(request, tmp_path) -> Callable[..., Ledger]:
    """A ledger that settles in the background, on each backend."""

    def make(**kwargs) -> Ledger:
        if request.param == "sqlite":
            return CostLedger(tmp_path / "ledger.db", settle_in_background=True, **kwargs)
        from leadfactory.llm.ledger.postgres import PostgresLedger

        return PostgresLedger(request.getfixturevalue("postgres_url"), **kwargs)

    return make


def gate(ledger: Ledger) -> threading.Event:
    """Hold the ledger's writer thread before each settlement until set."""
    opened = threading.Event()
    run_batch = ledger.run_batch

    def held(writes, *, announce=True):
        if any(isinstance(write, Settle) for write in writes):
            assert opened.wait(10), "the test never opened the gate"
        return run_batch(writes, announce=announce)

    ledger.run_batch = held  # type: ignore[method-assign]
    return opened


def open_soon(opened: threading.Event) -> None:
    timer = threading.Timer(0.2, opened.set)
    timer.daemon = True  # nothing waits for it at the end of a process
    timer.start()


def ask(client: LLMClient, n: int = 0) -> dict:
    return client.chat_completion([{"role": "user", "content": f"Tagline {n}?"}], max_tokens=100)


def outcomes(ledger: Ledger) -> list[str]:
    return [row["outcome"] for row in ledger.rows()]


def test_the_answer_does_not_wait_and_a_read_sees_the_settlement(config, make_ledger):
    ledger = make_ledger()
    opened = gate(ledger)
    with LLMClient(config, ledger=ledger) as client:
        response = ask(client)  # returns while the writer thread is held
        assert writer.LedgerWorker.for_ledger(ledger).pending()
        open_soon(opened)
        (row,) = ledger.rows()  # waits for this process's queued settlement
    assert row["outcome"] == "success"
    assert row["cost_usd"] == pytest.approx(response["cost"], abs=1e-12)


def test_async_calls_queue_their_settlements_too(config, make_ledger):
    ledger = make_ledger()
    opened = gate(ledger)

    async def main(client: LLMClient) -> dict:
        answer = await client.achat_completion([{"role": "user", "content": "Hi"}])
        assert writer.LedgerWorker.for_ledger(ledger).pending()
        open_soon(opened)
        return answer

    with LLMClient(config, ledger=ledger) as client:
        response = asyncio.run(main(client))
        (row,) = ledger.rows()
    assert row["outcome"] == "success" and row["cost_usd"] == pytest.approx(response["cost"])


def test_a_refusal_while_settlements_are_queued_waits_for_them_and_asks_again(
    config, make_ledger, monkeypatch
):
    monkeypatch.setenv("LLM_DAILY_COST_LIMIT", str(LIMIT))
    config = LLMConfig(enable_caching=False, providers=config.providers)
    ledger = make_ledger()
    opened = gate(ledger)
    with LLMClient(config, ledger=ledger) as client:
        first = ask(client, 1)
        assert first["cost"] < LIMIT / 3  # so the second call fits once the first settles
        open_soon(opened)  # the second reservation is refused until the first settles
        second = ask(client, 2)
    assert second["cost"] > 0
    assert outcomes(ledger) == ["success", "success"]


def test_alerts_of_queued_settlements_are_announced_once(config, make_ledger, monkeypatch):
    monkeypatch.setenv("LLM_DAILY_COST_LIMIT", str(LIMIT))
    monkeypatch.setenv("LLM_BUDGET_ALERT_THRESHOLD", "0.01")  # the first answer crosses it
    config = LLMConfig(enable_caching=False, providers=config.providers)
    heard: list[tuple[str, str]] = []

    def on_alert(alert) -> None:
        heard.append((alert.period, threading.current_thread().name))

    ledger = make_ledger(on_alert=on_alert)
    with LLMClient(config, ledger=ledger) as client:
        ask(client)
    assert heard == [("day", WRITER)]


@pytest.fixture
def flaky(tmp_path, monkeypatch) -> Iterator[tuple[CostLedger, list[int]]]:
    """A ledger whose writer thread finds the database away for its first two tries."""
    monkeypatch.setattr(writer, "RETRY_DELAYS", (0.01,))
    ledger = CostLedger(tmp_path / "ledger.db", settle_in_background=True)
    failures = [2]
    run_batch = ledger.run_batch

    def sometimes(writes, *, announce=True):
        if threading.current_thread().name == WRITER and failures[0] > 0:
            failures[0] -= 1
            raise LLMLedgerUnavailableError("the test's database is away")
        return run_batch(writes, announce=announce)

    ledger.run_batch = sometimes  # type: ignore[method-assign]
    yield ledger, failures
    ledger.close()


def test_a_settlement_the_database_could_not_take_is_tried_again(config, flaky):
    ledger, failures = flaky
    with LLMClient(config, ledger=ledger) as client:
        ask(client)
        assert outcomes(ledger) == ["success"]
    assert failures == [0]


def test_a_settlement_is_given_up_after_the_retry_period_with_a_warning(
    config, flaky, monkeypatch, caplog
):
    ledger, failures = flaky
    failures[0] = 10**6
    monkeypatch.setattr(writer, "RETRY_SECONDS", 0.05)
    with caplog.at_level(logging.WARNING), LLMClient(config, ledger=ledger) as client:
        ask(client)
        assert outcomes(ledger) == ["pending"]  # counts as reserved until the stale period
    assert "ledger write failed" in caplog.text and "database is away" in caplog.text


def _child(path: str, env: dict[str, str]) -> None:
    """A multiprocessing child that calls once and ends without closing its client."""
    import os

    os.environ.update(env)
    config = LLMConfig(enable_caching=False, ledger_path=path, ledger_settlement="background")
    for name in ("ollama", "anthropic"):
        config.providers[name].enabled = False
    client = LLMClient(config)
    opened = gate(client.ledger)
    ask(client)
    open_soon(opened)  # the settlement lands only after the child's work is over


def test_a_multiprocessing_child_writes_its_queued_settlements_before_it_ends(
    config, tmp_path, sim_env
):
    import os

    path = str(tmp_path / "ledger.db")
    env = {k: v for k, v in os.environ.items() if k.startswith(("OPENAI", "LLM_"))}
    child = multiprocessing.get_context("fork").Process(target=_child, args=(path, env))
    child.start()
    child.join(30)
    assert child.exitcode == 0
    with CostLedger(path) as ledger:
        assert outcomes(ledger) == ["success"]


def test_the_setting_and_each_backends_default(config, tmp_path, monkeypatch):
    assert LLMClient(config).ledger.settles_in_background is False  # the SQLite file
    monkeypatch.setenv("LLM_LEDGER_SETTLEMENT", "background")
    assert LLMClient(LLMConfig()).ledger.settles_in_background is True
    monkeypatch.setenv("LLM_LEDGER_SETTLEMENT", "sometimes")
    with pytest.raises(Exception, match="inline|background"):
        LLMConfig()


def test_postgresql_settles_in_the_background_unless_told_inline(config, postgres_url):
    config.ledger_url = postgres_url
    with LLMClient(config) as client:
        assert client.ledger.settles_in_background is True
    config.ledger_settlement = "inline"
    with LLMClient(config) as client:
        assert client.ledger.settles_in_background is False
        ask(client)
        assert not writer.LedgerWorker.for_ledger(client.ledger).pending()
        assert outcomes(client.ledger) == ["success"]


def test_async_with_closes_on_a_thread_once_the_queued_writes_are_done(config, make_ledger):
    ledger = make_ledger()
    opened = gate(ledger)

    async def main() -> int:
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        async with LLMClient(config, ledger=ledger) as client:
            await client.achat_completion([{"role": "user", "content": "Hi"}])
            ticker = asyncio.create_task(tick())
            open_soon(opened)  # closing waits ~0.2 s for the settlement
        ticker.cancel()
        return ticks

    assert asyncio.run(main()) >= 5  # the loop ran while the client closed
    assert outcomes(ledger) == ["success"]
