"""The async clients' transport (leadfactory.llm.http_async): LiteLLM's aiohttp transport
under the request's deadline, one per process and event loop.

The deadline's end to end behaviour (a trickled answer, a hung provider, streams) is
tested with the client in test_deadline.py, test_async_e2e.py,
test_async_concurrency.py and test_stream_async.py; here, what only the transport can
show: which timeout it raises before and after a connection, the statuses it records,
and the clients a forked child builds.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import multiprocessing
import socket
from collections.abc import Iterator

import httpx
import pytest

from leadfactory.llm import LLMClient, LLMConfig
from leadfactory.llm.providers import load_litellm

from .conftest import SENTINEL_KEY


@pytest.fixture(scope="module", autouse=True)
def litellm_loaded() -> None:
    load_litellm()  # http_clients needs httpx and the SDKs LiteLLM brings


def transport() -> httpx.AsyncBaseTransport:
    from leadfactory.llm.http_async import async_transport

    return async_transport()


async def post(url: str, timeout: float = 0.3) -> BaseException | httpx.Response:
    async with httpx.AsyncClient(transport=transport()) as client:
        try:
            return await client.post(url, content=b"{}", timeout=timeout)
        except Exception as error:
            return error


@contextlib.contextmanager
def listener(backlog: int) -> Iterator[tuple[socket.socket, str]]:
    """A socket that listens on 127.0.0.1 and never accepts."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(backlog)
        yield server, f"http://127.0.0.1:{server.getsockname()[1]}/v1/chat/completions"


def test_async_clients_send_through_litellms_aiohttp_transport(monkeypatch):
    assert type(transport()).__name__ == "_AiohttpDeadlineTransport"
    monkeypatch.setenv("DISABLE_AIOHTTP_TRANSPORT", "True")  # LiteLLM's switch: httpx's
    assert type(transport()).__name__ == "_AsyncDeadlineTransport"


def test_a_deadline_passed_before_connecting_is_a_connect_timeout():
    """Nothing was sent: httpx.ConnectTimeout, which charges.py does not charge."""
    with listener(0) as (_, url), contextlib.ExitStack() as fillers:
        port = int(url.split(":")[2].split("/")[0])
        for _ in range(3):  # the accept queue is full: the next connect waits unanswered
            filler = fillers.enter_context(socket.socket())
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(("127.0.0.1", port))
        error = asyncio.run(post(url))
    assert isinstance(error, httpx.ConnectTimeout), repr(error)


def test_a_deadline_passed_waiting_for_the_answer_is_a_read_timeout():
    """The request was sent (the kernel accepted the connection): httpx.ReadTimeout."""
    with listener(8) as (_, url):
        error = asyncio.run(post(url))
    assert isinstance(error, httpx.ReadTimeout), repr(error)


def test_every_answers_status_is_recorded(sim):
    from leadfactory.llm.http_clients import watch_answers

    async def main() -> tuple[list[int], int]:
        statuses = watch_answers()
        response = await post(sim.base_url("openai") + "/chat/completions", timeout=5)
        assert isinstance(response, httpx.Response), repr(response)
        return statuses, response.status_code

    statuses, status = asyncio.run(main())
    assert statuses == [status] and status == 400  # no model asked for: the simulator says so


def test_the_session_closes_when_asyncio_run_ends(sim_env):
    """With its connections, while the loop still runs (not left to the collector)."""
    from leadfactory.llm import http_clients

    client = LLMClient(LLMConfig(enable_caching=False))

    async def main():
        messages = [{"role": "user", "content": "hello"}]
        await client.achat_completion(messages, model="openai", cache=False)
        return http_clients._pools.pool(asyncio.get_running_loop()).transport._transport

    litellm_transport = asyncio.run(main())
    assert litellm_transport.client.closed
    client.close()


# -- forked children -------------------------------------------------------------------


def ask(client: LLMClient, question: str) -> str:
    messages = [{"role": "user", "content": question}]
    response = await_(client.achat_completion(messages, model="openai", cache=False))
    return response["choices"][0]["message"]["content"]


def await_(coroutine):
    return asyncio.get_event_loop_policy().get_event_loop().run_until_complete(coroutine)


def in_child(client: LLMClient, results) -> None:
    try:
        from leadfactory.llm import http_clients

        inherited = bool(http_clients._pools._inherited)
        gc.collect()  # what a busy child does sooner or later: finalize what it dropped
        asyncio.set_event_loop(asyncio.new_event_loop())  # the parent's is not this one's
        results.put((inherited, ask(client, "from the child")))
    except BaseException as error:  # reported, never a silent death
        results.put((None, repr(error)))


@pytest.mark.skipif(
    "fork" not in multiprocessing.get_all_start_methods(), reason="no fork start method"
)
@pytest.mark.timeout(60)
def test_a_forked_child_leaves_the_parents_open_loop_and_connections_alone(sim_env):
    """The parent keeps its event loop open (not closed, not running) across a fork:
    the child sets the parent's clients aside unclosed (closing them would unregister
    the parent's pooled sockets from the epoll both share) and builds its own; the
    parent then reuses its pooled connection on its loop."""
    config = LLMConfig(enable_caching=False)
    config.providers["openai"].api_key = SENTINEL_KEY
    config.providers["openai"].timeout = 5
    config.providers["openai"].max_retries = 0  # a lost connection would fail, not retry
    client = LLMClient(config)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        assert ask(client, "parent before").endswith("reply to: parent before")
        context = multiprocessing.get_context("fork")
        results = context.Queue()
        child = context.Process(target=in_child, args=(client, results))
        child.start()
        inherited, answer = results.get(timeout=40)
        child.join(timeout=10)
        assert inherited is True and answer.endswith("reply to: from the child"), answer
        assert ask(client, "parent after").endswith("reply to: parent after")
    finally:
        asyncio.set_event_loop(None)
        loop.close()
        client.close()
