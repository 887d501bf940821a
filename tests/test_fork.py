"""Workers forked from a process that already called providers get their own connections.

LiteLLM caches its HTTP clients per process; a child forked after a call (multiprocessing's
fork start method, gunicorn, celery prefork) would inherit the parent's pooled keep-alive
sockets, and children writing on one socket read each other's answers. Each child here
asks its own questions over every route at once and must get its own answers back.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time

import pytest

from leadfactory.llm import LLMClient, LLMConfig, LLMError
from leadfactory.llm.config import ProviderConfig
from leadfactory.llm.simulator.vendors import OLLAMA_MODEL

from .conftest import SENTINEL_KEY

pytestmark = pytest.mark.skipif(
    "fork" not in multiprocessing.get_all_start_methods(), reason="no fork start method"
)

CHILDREN = 8
ROUNDS = 8  # per child, each over every route
JOIN_SECONDS = 90  # a hung child is killed and fails the test, long before pytest's timeout


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
            default_model="claude-3-haiku",
        ),
        ProviderConfig(name="ollama", base_url=ollama, default_model=OLLAMA_MODEL),
        ProviderConfig(
            name="custom",
            api_key=SENTINEL_KEY,
            base_url=sim.base_url("openai"),
            default_model="house-model",
        ),
        ProviderConfig(name="native", base_url=ollama, default_model=f"ollama_chat/{OLLAMA_MODEL}"),
    ]
    for provider in providers:
        provider.max_retries = 0
        provider.timeout = 20
    return {provider.name: provider for provider in providers}


def ask(client: LLMClient, provider: str, question: str) -> str | None:
    """The mix-up or failure, if any, of one call pinned to ``provider``."""
    try:
        response = client.chat_completion([{"role": "user", "content": question}], model=provider)
    except LLMError as error:
        return f"{question!r}: {type(error).__name__}: {error}"
    answer = response["choices"][0]["message"]["content"]
    return None if answer.endswith(f"reply to: {question}") else f"{question!r} got {answer!r}"


def child(client: LLMClient, index: int, start, results) -> None:
    start.wait(timeout=30)  # every child at once: they would share a socket at the same time
    problems = [
        problem
        for round_ in range(ROUNDS)
        for provider in client.config.providers
        if (problem := ask(client, provider, f"child {index} round {round_} via {provider}"))
    ]
    results.put((index, problems))


def test_forked_children_never_read_each_others_answers(sim):
    config = LLMConfig(providers=routes(sim), enable_caching=False)
    client = LLMClient(config)
    for provider in config.providers:  # the parent's pools hold a connection per route
        assert ask(client, provider, f"parent sync via {provider}") is None
        assert asyncio.run(_aask(client, provider)) is None

    context = multiprocessing.get_context("fork")
    start, results = context.Barrier(CHILDREN), context.Queue()
    children = [
        context.Process(target=child, args=(client, index, start, results))
        for index in range(CHILDREN)
    ]
    for process in children:
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
    assert sorted(reports) == list(range(CHILDREN)), "a child hung or died"
    problems = [problem for found in reports.values() for problem in found]
    assert problems == [], f"{len(problems)} of {CHILDREN * ROUNDS * len(config.providers)}"
    rows = client.ledger.rows(limit=10_000)
    asked = CHILDREN * ROUNDS * len(config.providers) + 2 * len(config.providers)
    assert sum(row["outcome"] == "success" for row in rows) == asked


async def _aask(client: LLMClient, provider: str) -> str | None:
    question = f"parent async via {provider}"
    response = await client.achat_completion(
        [{"role": "user", "content": question}], model=provider
    )
    answer = response["choices"][0]["message"]["content"]
    return None if answer.endswith(f"reply to: {question}") else answer
