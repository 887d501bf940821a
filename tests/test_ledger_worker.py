"""The async client's ledger writer: batches, results and errors, cancellation, threads."""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
import time
from datetime import UTC, datetime

import pytest

from leadfactory.llm import LLMClient, LLMConfig
from leadfactory.llm.exceptions import LLMQuotaExceededError
from leadfactory.llm.ledger import (
    Budget,
    CostLedger,
    LedgerWorker,
    Reservation,
    Reserve,
    Settle,
    writer,
)

NOON = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
CAP = Budget(max_cost_per_request=None, daily_limit=0.05, monthly_limit=None, alert_threshold=None)


def reserve_kwargs(i: int, usd: float = 0.01) -> dict:
    return {
        "request_id": f"r{i}",
        "provider": "openai",
        "model": "gpt-4",
        "estimated_usd": usd,
        "budget": CAP,
    }


def reserve(i: int, usd: float = 0.01, budget: Budget = CAP) -> Reserve:
    return Reserve(**{**reserve_kwargs(i, usd), "budget": budget})


@pytest.fixture
def ledger(tmp_path):
    ledger = CostLedger(tmp_path / "ledger.db", clock=lambda: NOON)
    yield ledger
    ledger.close()


def test_run_batch_gives_each_write_its_own_result(ledger):
    first = ledger.reserve(**reserve_kwargs(0))
    results = ledger.run_batch(
        [
            reserve(1),
            reserve(2, usd=1.0),  # over the daily cap: refused alone
            Settle(first, outcome="success", cost_usd=0.002),
            Settle(first, outcome="success"),  # settled already
            Settle(first, outcome="maybe"),  # bad argument
            Settle(first, outcome="success", cost_usd=-1.0),  # bad argument
            "nonsense",  # not a write
        ]
    )
    assert isinstance(results[0], Reservation)
    assert isinstance(results[1], LLMQuotaExceededError)
    assert results[2] is None
    assert [type(r) for r in results[3:]] == [ValueError, ValueError, ValueError, TypeError]
    rows = {row["request_id"]: row for row in ledger.rows()}
    assert set(rows) == {"r0", "r1"}  # the refusal wrote nothing, the rest committed
    assert rows["r0"]["outcome"] == "success" and rows["r1"]["outcome"] == "pending"


def test_concurrent_writes_share_transactions_off_the_loop_thread(ledger):
    threads: set[int] = set()
    run_batch = ledger.run_batch

    def spy(operations, **options):
        threads.add(threading.get_ident())
        return run_batch(operations, **options)

    ledger.run_batch = spy  # type: ignore[method-assign]
    worker = LedgerWorker(ledger)
    budget = Budget(max_cost_per_request=None, daily_limit=None, monthly_limit=None)

    async def main() -> list[Reservation]:
        async def one(i: int) -> Reservation:
            return await worker.call(reserve(i, budget=budget))

        return await asyncio.gather(*(one(i) for i in range(200)))

    reservations = asyncio.run(main())
    assert len({r.row_id for r in reservations}) == 200
    assert threading.get_ident() not in threads and len(threads) == 1
    assert worker.batches < 200  # grouped: fewer COMMITs than writes
    assert len(ledger.rows()) == 200


def test_a_refusal_is_raised_in_the_awaiting_coroutine(ledger):
    worker = LedgerWorker.for_ledger(ledger)
    assert LedgerWorker.for_ledger(ledger) is worker

    async def main() -> None:
        await worker.call(reserve(0, usd=0.04))
        with pytest.raises(LLMQuotaExceededError, match="daily_cost_limit"):
            await worker.call(reserve(1, usd=0.02))

    asyncio.run(main())


def test_a_reservation_whose_caller_was_cancelled_is_given_back(ledger):
    worker = LedgerWorker(ledger)
    gate = threading.Event()
    run_batch = ledger.run_batch

    def slow(operations, **options):
        gate.wait(5)
        return run_batch(operations, **options)

    ledger.run_batch = slow  # type: ignore[method-assign]

    async def main() -> None:
        task = asyncio.ensure_future(worker.call(reserve(0)))
        await asyncio.sleep(0.05)
        task.cancel()
        await asyncio.sleep(0)
        gate.set()  # the reservation is made after its caller gave up
        for _ in range(200):
            await asyncio.sleep(0.01)
            rows = ledger.rows()
            if rows and rows[0]["outcome"] != "pending":
                break

    asyncio.run(main())
    (row,) = ledger.rows()
    assert (row["outcome"], row["error_class"], row["reserved_usd"]) == ("error", "Cancelled", 0)


def test_a_reservation_cancelled_after_it_arrived_is_given_back(ledger):
    """The narrow window: the result is set, then the task is cancelled before it resumes."""
    worker = LedgerWorker.for_ledger(ledger)

    async def main():
        task = asyncio.create_task(worker.call(reserve(0)))
        await asyncio.sleep(0)  # the task submits its write
        assert worker.drain(5)  # written; its result is queued for this loop
        await asyncio.sleep(0)  # the result is set: the task is due to resume
        task.cancel()  # ...but is cancelled first
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert worker.drain(5)
    assert [(r["outcome"], r["error_class"]) for r in ledger.rows()] == [("error", "Cancelled")]
    assert ledger.spend() == 0


def test_async_client_settles_before_it_answers(sim_env, tmp_path):
    client = LLMClient(LLMConfig(enable_caching=False, ledger_path=tmp_path / "l.db"))

    async def main() -> list[dict]:
        messages = [[{"role": "user", "content": f"question {i}"}] for i in range(30)]
        return await asyncio.gather(*(client.achat_completion(m, max_tokens=5) for m in messages))

    responses = asyncio.run(main())
    rows = {row["request_id"]: row for row in client.ledger.rows()}
    for response in responses:  # each answer's row is committed by the time it is returned
        assert rows[response["request_id"]]["outcome"] == "success"
    client.close()


def test_an_idle_writer_thread_ends_and_a_new_write_starts_another(ledger, monkeypatch):
    import leadfactory.llm.ledger.writer as module

    monkeypatch.setattr(module, "IDLE_SECONDS", 0.05)
    worker = LedgerWorker(ledger)
    budget = Budget(max_cost_per_request=None, daily_limit=None, monthly_limit=None)

    async def reserve_one(i: int) -> Reservation:
        return await worker.call(reserve(i, budget=budget))

    asyncio.run(reserve_one(0))
    for _ in range(200):
        if not worker.running():
            break
        threading.Event().wait(0.01)
    assert not worker.running()
    assert asyncio.run(reserve_one(1)).request_id == "r1"  # a fresh thread took it
    assert len(ledger.rows()) == 2


def test_the_worker_does_not_keep_its_ledger_alive(tmp_path):
    import gc
    import weakref

    ledger = CostLedger(tmp_path / "ledger.db", clock=lambda: NOON)
    worker = LedgerWorker.for_ledger(ledger)
    alive = weakref.ref(ledger)
    ledger.close()
    del ledger
    gc.collect()
    assert alive() is None
    assert worker is not None


def _write_through_the_worker(worker: LedgerWorker, results) -> None:
    try:
        reservation = asyncio.run(worker.call(reserve(7)))
        results.put(reservation.request_id)
    except BaseException as exc:
        results.put(repr(exc))


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="no fork")
def test_a_child_forked_while_the_writer_lock_was_held_writes(ledger):
    worker = LedgerWorker.for_ledger(ledger)
    asyncio.run(worker.call(reserve(0)))  # the parent's writer thread exists
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    with worker._lock:  # as a parent thread inside _submit would hold it at the fork
        child = context.Process(target=_write_through_the_worker, args=(worker, results))
        child.start()
    child.join(timeout=60)
    if child.is_alive():  # blocked on the inherited lock: fail, without hanging the suite
        child.kill()
        child.join()
    assert child.exitcode == 0
    assert results.get(timeout=5) == "r7"
    assert {row["request_id"] for row in ledger.rows()} == {"r0", "r7"}


def test_a_queued_write_keeps_its_ledger_until_it_is_written(tmp_path):
    """A client dropped right after its call may leave nothing else holding the ledger."""
    import gc
    import sys

    path = tmp_path / "ledger.db"
    ledger = CostLedger(path, clock=lambda: NOON)
    worker = LedgerWorker.for_ledger(ledger)
    worker.write_later(reserve(0))
    assert worker.drain()  # the writer thread now idles, waiting for the next write
    reservation = ledger.reserve(**reserve_kwargs(1))
    interval = sys.getswitchinterval()
    sys.setswitchinterval(30.0)  # the writer thread cannot run until this thread blocks
    try:
        worker.write_later(Settle(reservation, outcome="success", cost_usd=0.002))
        del ledger, reservation
        gc.collect()
    finally:
        sys.setswitchinterval(interval)
    assert worker.drain()
    with CostLedger(path) as reopened:
        assert [row["outcome"] for row in reopened.rows()] == ["pending", "success"]


def settlements(ledger: CostLedger, count: int) -> list[Settle]:
    return [
        Settle(ledger.reserve(**reserve_kwargs(i, usd=0.001)), outcome="success", cost_usd=0.0005)
        for i in range(count)
    ]


def test_settlements_nobody_awaits_wait_to_share_one_transaction(ledger, monkeypatch):
    monkeypatch.setattr(writer, "LINGER_SECONDS", 60.0)  # only a waiter lets them go
    first, *rest = settlements(ledger, 5)
    worker = LedgerWorker(ledger)
    worker.write_later(first)
    time.sleep(0.05)  # the thread has the first one, and lingers
    for write in rest:
        worker.write_later(write)
    time.sleep(0.05)
    assert worker.pending() and worker.batches == 0  # still waiting for company
    assert worker.drain(timeout=5)  # a waiter: they go at once, together
    assert worker.batches == 1
    assert [row["outcome"] for row in ledger.rows()] == ["success"] * 5


def test_an_awaited_write_does_not_wait_behind_a_lingering_one(ledger, monkeypatch):
    monkeypatch.setattr(writer, "LINGER_SECONDS", 60.0)
    (settle,) = settlements(ledger, 1)
    worker = LedgerWorker(ledger)
    worker.write_later(settle)

    async def main() -> Reservation:
        await asyncio.sleep(0.05)  # the settlement lingers by now
        return await asyncio.wait_for(worker.call(reserve(9)), timeout=5)

    assert isinstance(asyncio.run(main()), Reservation)
    assert worker.drain(timeout=5) and worker.batches == 1  # one transaction for both
