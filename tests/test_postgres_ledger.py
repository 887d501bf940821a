"""The PostgreSQL ledger's own behaviour: what the SQLite contract cannot see.

Each test works in its own schema (tests/services.py), dropped afterwards; without a
server they skip, saying what to start (CI fails instead).
"""

from __future__ import annotations

import logging
import multiprocessing
import socket
from datetime import UTC, datetime

import psycopg
import pytest

from leadfactory.llm import LLMConfig, LLMLedgerUnavailableError
from leadfactory.llm.exceptions import LLMConfigurationError, LLMQuotaExceededError
from leadfactory.llm.ledger import Budget
from leadfactory.llm.ledger.postgres import PostgresLedger
from leadfactory.llm.ledger.postgres_pool import PostgresConnections
from leadfactory.llm.ledger.postgres_schema import MIGRATIONS

PASSWORD = "pw-SENTINEL-3c9e1f"
LIMITED = Budget(max_cost_per_request=1.0, daily_limit=0.05, monthly_limit=10.0)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def with_password(url: str) -> str:
    return url.replace("://postgres@", f"://postgres:{PASSWORD}@", 1)


def totals_match_rows(url: str) -> None:
    """The running totals equal the sum of the rows they count (nothing reset here)."""
    with psycopg.connect(url) as conn:
        totals = conn.execute(
            "SELECT provider, sum(spent_nano_usd) FROM spend_totals WHERE period = 'month'"
            " GROUP BY provider ORDER BY provider"
        ).fetchall()
        rows = conn.execute(
            "SELECT provider, sum(round((cost_usd + reserved_usd) * 1e9))::bigint FROM calls"
            " GROUP BY provider HAVING sum(cost_usd + reserved_usd) > 0 ORDER BY provider"
        ).fetchall()
    assert [(p, int(n)) for p, n in totals if n] == rows


def _host(url: str, host: int, results) -> None:
    """One host: its own pool; reserves and settles until the budget refuses it."""
    admitted = refused = 0
    with PostgresLedger(url) as ledger:
        for i in range(40):
            try:
                reservation = ledger.reserve(
                    request_id=f"h{host}-{i}",
                    provider=("openai", "anthropic")[i % 2],
                    model="m",
                    estimated_usd=0.004,
                    budget=LIMITED,
                )
            except LLMQuotaExceededError:
                refused += 1
                continue
            admitted += 1
            ledger.settle(reservation, outcome="success", cost_usd=0.003)
    results.put((admitted, refused))


def test_hosts_reserving_at_once_never_pass_the_daily_limit(postgres_url):
    url = postgres_url
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    hosts = [context.Process(target=_host, args=(url, n, results)) for n in range(4)]
    for host in hosts:
        host.start()
    outcomes = [results.get(timeout=120) for _ in hosts]
    for host in hosts:
        host.join(timeout=30)
    assert sum(refused for _, refused in outcomes) > 0
    with PostgresLedger(url) as ledger:
        rows = ledger.rows()
        assert sum(admitted for admitted, _ in outcomes) == len(rows)
        assert sum(row["cost_usd"] for row in rows) <= LIMITED.daily_limit + 1e-12
        assert not [row for row in rows if row["outcome"] == "pending"]
        assert len(ledger.alerts()) == 1  # the day's, once for every host
    totals_match_rows(url)


def test_hosts_starting_together_migrate_once(postgres_url):
    url = postgres_url
    context = multiprocessing.get_context("spawn")
    with context.Pool(4) as pool:
        pool.map(_open_and_ping, [url] * 4)
    with psycopg.connect(url) as conn:
        names = [row[0] for row in conn.execute("SELECT name FROM leadfactory_ledger_migrations")]
    assert sorted(names) == sorted(name for name, _ in MIGRATIONS)


def _open_and_ping(url: str) -> None:
    with PostgresLedger(url) as ledger:
        ledger.ping()


def test_serialization_failures_and_deadlocks_are_retried(postgres_url):
    url = postgres_url
    connections = PostgresConnections(url, timeout=5.0, max_connections=2)
    raised = [psycopg.errors.SerializationFailure, psycopg.errors.DeadlockDetected]

    def work(conn):
        if raised:
            raise raised.pop(0)("PostgreSQL asks to retry")
        return conn.execute("SELECT 42").fetchone()[0]

    try:
        assert connections.run(work) == 42 and not raised
    finally:
        connections.close()


def test_other_database_errors_are_ledger_errors_without_their_chain(postgres_url):
    url = postgres_url
    with PostgresLedger(url) as ledger, pytest.raises(LLMLedgerUnavailableError) as caught:
        ledger._run(lambda conn: conn.execute("SELECT * FROM no_such_table"))
    assert "42P01" in str(caught.value) and caught.value.__cause__ is None


def test_an_unreachable_database_refuses_paid_requests_and_lets_free_ones_go(caplog):
    ledger = PostgresLedger(f"postgresql://postgres@127.0.0.1:{free_port()}/test", timeout=0.5)
    request = {"model": "m", "budget": LIMITED}
    with pytest.raises(LLMLedgerUnavailableError, match="did not answer") as caught:
        ledger.reserve(request_id="paid", provider="openai", estimated_usd=0.01, **request)
    assert caught.value.metadata["ledger"] == ledger.url
    with caplog.at_level(logging.WARNING, logger="leadfactory.llm"):
        free = ledger.reserve(request_id="free", provider="ollama", estimated_usd=0.0, **request)
        ledger.settle(free, outcome="success")
    assert free.row_id == 0
    assert "request free to ollama (free) is not written" in caplog.text
    with pytest.raises(LLMLedgerUnavailableError):
        ledger.spend()
    ledger.close()


def test_the_password_is_never_shown(postgres_url, caplog):
    url = postgres_url
    secret_url = with_password(url)
    with caplog.at_level(logging.DEBUG):
        with PostgresLedger(secret_url) as ledger:  # trust authentication ignores it
            ledger.ping()
            shown = [repr(ledger), ledger.url, str(ledger.rows())]
        down = PostgresLedger(with_password(f"postgresql://postgres@127.0.0.1:{free_port()}/x"))
        down._db.timeout = 0.3
        with pytest.raises(LLMLedgerUnavailableError) as caught:
            down.spend()
        down.close()
    shown += [str(caught.value), repr(caught.value), str(caught.value.metadata), caplog.text]
    with pytest.raises(LLMConfigurationError) as bad:
        LLMConfig(ledger_url=with_password("mysql://postgres@127.0.0.1/test"))
    config = LLMConfig(ledger_url=secret_url)
    shown += [str(bad.value), repr(config), config.model_dump_json()]
    assert "LLM_LEDGER_URL" in str(bad.value)
    assert all(PASSWORD not in text for text in shown)
    assert "postgres:***@" in ledger.url


def test_rows_carry_utc_timestamps_like_the_sqlite_ledger(postgres_url):
    url = postgres_url
    moment = datetime(2026, 11, 30, 23, 59, 59, 999999, tzinfo=UTC)
    with PostgresLedger(url, clock=lambda: moment) as ledger:
        reservation = ledger.reserve(
            request_id="r", provider="openai", model="m", estimated_usd=0.01, budget=LIMITED
        )
        ledger.settle(reservation, outcome="success", cost_usd=0.002, estimated=True)
        (row,) = ledger.rows()
        assert row["ts"] == "2026-11-30T23:59:59.999999+00:00" and row["estimated"] == 1
        assert ledger.spend(period="month") == pytest.approx(0.002)
    with psycopg.connect(url) as conn:
        views = conn.execute("SELECT day, requests, cost_usd FROM spend_by_day").fetchall()
        callers = conn.execute("SELECT count(*) FROM spend_by_caller").fetchone()
    assert views == [("2026-11-30", 1, 0.002)] and callers == (1,)


def test_the_async_client_writes_through_the_writer_thread(sim_env, postgres_url):
    import asyncio

    from leadfactory.llm import LLMClient

    async def calls(client):
        prompts = [[{"role": "user", "content": f"async {n}"}] for n in range(12)]
        return await asyncio.gather(*(client.achat_completion(p, model="openai") for p in prompts))

    with LLMClient(LLMConfig(ledger_url=postgres_url, enable_caching=False)) as client:
        responses = asyncio.run(calls(client))
        rows = client.ledger.rows()
    assert {r["request_id"] for r in responses} == {row["request_id"] for row in rows}
    assert {row["outcome"] for row in rows} == {"success"}
    totals_match_rows(postgres_url)


def test_only_reservations_commit_without_waiting_for_the_disk(postgres_url):
    from leadfactory.llm.ledger.postgres_schema import RESERVE_LOCK, WRITE_LOCK

    with psycopg.connect(postgres_url, autocommit=True) as conn:
        for lock, during in ((RESERVE_LOCK, "off"), (WRITE_LOCK, "on")):
            with conn.transaction():
                conn.execute(lock)
                assert conn.execute("SHOW synchronous_commit").fetchone() == (during,)
            assert conn.execute("SHOW synchronous_commit").fetchone() == ("on",)


def test_a_call_whose_reservation_was_lost_is_still_charged(postgres_url, caplog):
    """A server crash may lose a reservation (committed without waiting for the disk)
    while its call is under way: the settlement writes the row again, settled."""
    with PostgresLedger(postgres_url) as ledger:
        reservation = ledger.reserve(
            request_id="lost", provider="openai", model="m", estimated_usd=0.01, budget=LIMITED
        )
        with psycopg.connect(postgres_url, autocommit=True) as conn:  # what the crash undoes
            conn.execute("DELETE FROM calls")
            conn.execute("DELETE FROM spend_totals")
            conn.execute("ALTER TABLE calls ALTER COLUMN id RESTART WITH 1")  # set back too
        with caplog.at_level(logging.WARNING):
            ledger.settle(reservation, outcome="success", cost_usd=0.004, prompt_tokens=7)
        (row,) = ledger.rows()
        assert (row["request_id"], row["outcome"], row["cost_usd"]) == ("lost", "success", 0.004)
        assert (row["prompt_tokens"], row["reserved_usd"]) == (7, 0.0)
        assert ledger.spend() == pytest.approx(0.004)
        assert "written again" in caplog.text
        with pytest.raises(ValueError, match="not a pending reservation"):  # settled once
            ledger.settle(reservation, outcome="success", cost_usd=0.004)
        ledger.release(reservation)  # nothing pending: nothing changes
        later = ledger.reserve(  # the id sequence moved past the row written again
            request_id="later", provider="openai", model="m", estimated_usd=0.01, budget=LIMITED
        )
        ledger.release(later)
        assert later.row_id > reservation.row_id
        assert [r["cost_usd"] for r in ledger.rows()] == [0.004, 0.0]
    totals_match_rows(postgres_url)


def test_a_connection_whose_prepared_statements_are_gone_prepares_them_again(postgres_url):
    """A lone write runs statements its connection prepared (postgres_lone); a pooler or
    a DEALLOCATE ALL may drop them: the write is then run again, once, not twice."""
    with PostgresLedger(postgres_url, max_connections=1) as ledger:
        first = ledger.reserve(
            request_id="a", provider="openai", model="m", estimated_usd=0.01, budget=LIMITED
        )
        ledger.settle(first, outcome="success", cost_usd=0.004)
        ledger._run(lambda conn: conn.execute("DEALLOCATE ALL"))
        second = ledger.reserve(
            request_id="b", provider="openai", model="m", estimated_usd=0.01, budget=LIMITED
        )
        ledger._run(lambda conn: conn.execute("DEALLOCATE lf_ledger_settle_one"))  # one of them
        ledger.settle(second, outcome="success", cost_usd=0.002)
        rows = [(row["request_id"], row["outcome"]) for row in ledger.rows()]
        assert rows == [("a", "success"), ("b", "success")]
        assert ledger.spend() == pytest.approx(0.006)
    totals_match_rows(postgres_url)


def test_a_lone_write_quotes_its_arguments_as_psycopg_would(postgres_url):
    """A lone write's arguments are SQL literals written by postgres_lone: quotes,
    backslashes, non-ASCII text, awkward floats and a NUL byte (refused, nothing written)."""
    awkward = ["it's", "back\\slash'); DROP TABLE calls; --", "é ü 😀", ""]
    with PostgresLedger(postgres_url) as ledger:
        for index, text in enumerate(awkward):
            reservation = ledger.reserve(
                request_id=text, provider="openai", model=text, estimated_usd=1e-7,
                budget=LIMITED, caller=text,
            )  # fmt: skip
            ledger.settle(reservation, outcome="success", cost_usd=index * 1e-5)
        with pytest.raises(LLMLedgerUnavailableError, match="NUL"):
            ledger.reserve(
                request_id="nul\x00", provider="openai", model="m", estimated_usd=0.01,
                budget=LIMITED,
            )  # fmt: skip
        rows = ledger.rows()
    assert [(r["request_id"], r["model"], r["caller"]) for r in rows] == [
        (t, t, t) for t in awkward
    ]
    assert [r["cost_usd"] for r in rows] == [index * 1e-5 for index in range(4)]  # exactly
    totals_match_rows(postgres_url)


def test_a_connection_the_server_ended_between_two_writes_is_replaced(postgres_url):
    """A lone write on a pooled connection whose backend is gone (a restart, an
    administrator's pg_terminate_backend) closes it mid-exchange; the pool's one retry on
    a broken connection then writes on a new one."""
    with PostgresLedger(postgres_url, max_connections=1) as ledger:
        first = ledger.reserve(
            request_id="a", provider="openai", model="m", estimated_usd=0.01, budget=LIMITED
        )
        backend = ledger._run(lambda conn: conn.info.backend_pid)
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", [backend])
        second = ledger.reserve(
            request_id="b", provider="openai", model="m", estimated_usd=0.01, budget=LIMITED
        )
        assert ledger._run(lambda conn: conn.info.backend_pid) != backend
        for reservation in (first, second):
            ledger.settle(reservation, outcome="success", cost_usd=0.001)
        assert [row["outcome"] for row in ledger.rows()] == ["success", "success"]
    totals_match_rows(postgres_url)
