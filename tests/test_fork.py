"""Workers forked from a process that already called providers get their own connections.

LiteLLM caches its HTTP clients per process; a child forked after a call (multiprocessing's
fork start method, gunicorn, celery prefork) would inherit the parent's pooled keep-alive
sockets, and children writing on one socket read each other's answers. Each child here
asks its own questions over every route at once and must get its own answers back; a
parent thread is busy making calls (writing the ledger) at each fork; every child writes
all its rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import logging
import multiprocessing
import threading
import time
from collections import Counter
from collections.abc import Iterator

import pytest

from leadfactory.llm import LLMClient, LLMConfig, LLMError
from leadfactory.llm.config import ProviderConfig
from leadfactory.llm.simulator.vendors import OLLAMA_MODEL

from .conftest import SENTINEL_KEY

pytestmark = [
    pytest.mark.skipif(
        "fork" not in multiprocessing.get_all_start_methods(), reason="no fork start method"
    ),
    pytest.mark.slow,
    pytest.mark.timeout(240),  # ~30 s on a loaded 2-core machine; a hung child fails sooner
]

CHILDREN = 8
ROUNDS = 8  # per child, each over every route
JOIN_SECONDS = 150  # then a hung child is killed and reported, before pytest's timeout


def routes(sim) -> dict[str, ProviderConfig]:
    """One provider per LiteLLM route the client uses (openai/, anthropic/, Ollama's /v1,
    a custom OpenAI-compatible endpoint, Ollama's native ollama_chat/)."""
    ollama = sim.base_url("ollama")
    providers = [
        ProviderConfig(
            name="openai",
            api_key=SENTINEL_KEY,
            base_url=sim.base_url("openai"),
            default_model="gpt-4o-mini",
        ),
        ProviderConfig(
            name="anthropic",
            api_key=SENTINEL_KEY,
            base_url=sim.base_url("anthropic"),
            default_model="claude-haiku-4-5",  # in the price map: priced
        ),
        ProviderConfig(name="ollama", base_url=ollama, default_model=OLLAMA_MODEL),
        ProviderConfig(
            name="custom",
            api_key=SENTINEL_KEY,
            base_url=sim.base_url("openai"),
            default_model="house-model",
            cost_per_1k_tokens=0.001,  # unknown to the price map: priced here, or refused
        ),
        ProviderConfig(name="native", base_url=ollama, default_model=f"ollama_chat/{OLLAMA_MODEL}"),
    ]
    for provider in providers:
        provider.max_retries = 0
        provider.timeout = 20
    return {provider.name: provider for provider in providers}


def ask(client: LLMClient, provider: str, question: str, caller: str = "parent") -> str | None:
    """The mix-up or failure, if any, of one call pinned to ``provider``."""
    messages = [{"role": "user", "content": question}]
    try:
        response = client.chat_completion(messages, model=provider, caller=caller)
    except LLMError as error:
        return f"{question!r}: {type(error).__name__}: {error}"
    answer = response["choices"][0]["message"]["content"]
    return None if answer.endswith(f"reply to: {question}") else f"{question!r} got {answer!r}"


def child(client: LLMClient, index: int, start, results, dumps=None) -> None:
    if dumps is not None:  # a hung child leaves where each of its threads waits
        trace = open(dumps / f"child-{index}.txt", "w")  # noqa: SIM115 - open until exit
        faulthandler.dump_traceback_later(JOIN_SECONDS - 30, file=trace)
    try:
        results.put((index, questions(client, index, start)))
    except BaseException as error:  # reported, never a silent death
        results.put((index, [f"child {index} raised {error!r}"]))


def questions(client: LLMClient, index: int, start) -> list[str]:
    with contextlib.suppress(threading.BrokenBarrierError):
        start.wait(timeout=60)  # every child at once: they would share a socket at the same time
    return [
        problem
        for round_ in range(ROUNDS)
        for provider in client.config.providers
        if (
            problem := ask(
                client, provider, f"child {index} round {round_} via {provider}", f"child {index}"
            )
        )
    ]


@pytest.fixture
def no_log_lines():
    """A child forked while a parent thread writes a log line to a file (pytest's own log
    file among them) waits forever on that file's lock: Python resets logging's locks at a
    fork, not the io lock underneath. A hazard of logging with threads and fork, not of
    the sockets this test is about, so the client writes no INFO line here."""
    ours = logging.getLogger("leadfactory.llm")
    level = ours.level
    ours.setLevel(logging.WARNING)
    yield
    ours.setLevel(level)


def test_forked_children_never_read_each_others_answers(sim, tmp_path, no_log_lines):
    config = LLMConfig(providers=routes(sim), enable_caching=False)
    client = LLMClient(config)
    for provider in config.providers:  # the parent's pools hold a connection per route
        assert ask(client, provider, f"parent sync via {provider}") is None
        assert asyncio.run(_aask(client, provider)) is None

    context = multiprocessing.get_context("fork")
    start, results = context.Barrier(CHILDREN), context.Queue()
    children = [
        context.Process(target=child, args=(client, index, start, results, tmp_path))
        for index in range(CHILDREN)
    ]
    with parent_thread_busy_calling(client):  # at the moment of every fork
        for process in children:
            time.sleep(0.02)  # forks land at different points of the thread's calls
            process.start()
    reports = {}
    deadline = time.monotonic() + JOIN_SECONDS
    try:
        while len(reports) < CHILDREN and time.monotonic() < deadline:
            try:
                index, problems = results.get(timeout=1)
            except Exception:  # queue.Empty: check again until the deadline
                continue
            reports[index] = problems
    finally:
        for process in children:
            process.join(timeout=max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
    dumps = {i: tmp_path / f"child-{i}.txt" for i in range(CHILDREN) if i not in reports}
    hung = {i: dump.read_text() if dump.exists() else "(no dump)" for i, dump in dumps.items()}
    assert not hung, f"a child hung or died; where its threads waited: {hung}"
    problems = [problem for found in reports.values() for problem in found]
    assert problems == [], f"{len(problems)} of {CHILDREN * ROUNDS * len(config.providers)}"
    written = Counter(
        row["caller"] for row in client.ledger.rows(limit=10_000) if row["outcome"] == "success"
    )
    every_child = {f"child {index}": ROUNDS * len(config.providers) for index in range(CHILDREN)}
    assert written.pop("parent thread") > 0
    assert written == {"parent": 2 * len(config.providers), **every_child}


@contextlib.contextmanager
def parent_thread_busy_calling(client: LLMClient) -> Iterator[None]:
    """A thread of this process makes calls meanwhile: each writes the ledger twice, and
    uses a pooled connection, so forks land inside a ledger write or a request."""
    stop = threading.Event()

    def keep_calling() -> None:
        while not stop.is_set():
            ask(client, "openai", "from a parent thread", caller="parent thread")

    thread = threading.Thread(target=keep_calling)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


async def _aask(client: LLMClient, provider: str) -> str | None:
    question = f"parent async via {provider}"
    response = await client.achat_completion(
        [{"role": "user", "content": question}], model=provider, caller="parent"
    )
    answer = response["choices"][0]["message"]["content"]
    return None if answer.endswith(f"reply to: {question}") else answer
