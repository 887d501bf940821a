"""The response cache on Redis (LLM_CACHE_URL): shared between clients that share
nothing else, single-flight between them, and a cache that keeps working when the
server is away. The store's own behaviour is in tests/contract/."""

from __future__ import annotations

import threading
import uuid

import pytest
from loguru import logger

from leadfactory.llm import LLMClient, LLMConfig
from leadfactory.llm.cache.host_flight import HostFlight
from leadfactory.llm.cache.redis_store import RedisStore
from leadfactory.llm.redis_link import RedisLink
from leadfactory.llm.simulator import Fault
from tests.services import REDIS_URL, require_redis

from .test_client_cache import USER, provider_calls

NOTHING_LISTENS = "redis://127.0.0.1:9/0"


@pytest.fixture
def redis_env(sim_env, monkeypatch, redis_prefix):
    """The simulator's providers (paid ones only) and the cache on the test Redis."""
    monkeypatch.setenv("LLM_CACHE_URL", require_redis())
    monkeypatch.setenv("LLM_REDIS_KEY_PREFIX", redis_prefix)
    monkeypatch.setenv("OLLAMA_ENABLED", "false")
    return sim_env


def host_client(tmp_path, name: str) -> LLMClient:
    """A client with its own ledger and cache file, as on another host."""
    home = tmp_path / name
    home.mkdir()
    return LLMClient(LLMConfig(ledger_path=home / "ledger.db", cache_path=home / "cache.db"))


def test_an_answer_stored_by_one_client_is_a_hit_on_another(redis_env, tmp_path):
    with host_client(tmp_path, "a") as first, host_client(tmp_path, "b") as second:
        answer = first.chat_completion(USER)
        again = second.chat_completion(USER)
        assert answer["cached"] is False
        assert again["cached"] is True and again["choices"] == answer["choices"]
        assert provider_calls(redis_env) == 1
        assert not (tmp_path / "a" / "cache.db").exists()  # the file is not used
        assert second.cache.stats()["entries"] == 1


def test_clients_asking_at_once_make_one_call(redis_env, tmp_path):
    """Separate clients share no in-process single-flight: only Redis joins them."""
    redis_env.set_fault("anthropic", Fault.DELAY, delay=0.3)
    clients = [host_client(tmp_path, f"h{i}") for i in range(4)]
    results: list[dict] = []
    barrier = threading.Barrier(len(clients))

    def ask(client: LLMClient) -> None:
        barrier.wait()
        results.append(client.chat_completion(USER))

    threads = [threading.Thread(target=ask, args=(c,)) for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for client in clients:
        client.close()
    assert len(results) == 4
    assert provider_calls(redis_env) == 1
    assert sorted(r["cached"] for r in results) == [False, True, True, True]


def test_a_waiter_calls_itself_when_the_claim_outlasts_the_timeout(redis_prefix):
    store = RedisStore(RedisLink(REDIS_URL, redis_prefix))
    assert store.claim("k", 30) is not None  # a host that never answers
    flight = HostFlight(lambda: store, timeout=0.2)
    looks: list[int] = []
    answer = flight.run("k", lambda: looks.append(1), lambda found: found, lambda: "called")
    assert answer == "called" and len(looks) >= 2


def test_a_waiter_takes_over_when_the_caller_gives_up(redis_prefix):
    store = RedisStore(RedisLink(REDIS_URL, redis_prefix))
    token = store.claim("k", 30)
    flight = HostFlight(lambda: store, timeout=30)
    threading.Timer(0.2, store.release, ("k", token)).start()  # failed, stored nothing
    answer = flight.run("k", lambda: None, lambda found: found, lambda: "called")
    assert answer == "called"
    assert store.claim("k", 30) is not None  # the taker released its claim


def test_a_waiter_gets_the_answer_the_caller_stored(redis_prefix):
    store = RedisStore(RedisLink(REDIS_URL, redis_prefix))
    token = store.claim("k", 30)
    stored: list[str] = []

    def finish() -> None:
        stored.append("answer")
        store.release("k", token)

    threading.Timer(0.2, finish).start()
    flight = HostFlight(lambda: store, timeout=30)
    answer = flight.run(
        "k", lambda: stored[0] if stored else None, lambda found: f"served {found}", lambda: 1 / 0
    )
    assert answer == "served answer"


def test_a_cache_on_a_server_that_is_away_answers_from_memory_with_one_warning(
    sim_env, monkeypatch, tmp_path
):
    monkeypatch.setenv("LLM_CACHE_URL", NOTHING_LISTENS)
    monkeypatch.setenv("LLM_REDIS_KEY_PREFIX", f"{uuid.uuid4().hex}:")  # a link of its own
    monkeypatch.setenv("OLLAMA_ENABLED", "false")
    warnings: list[str] = []
    sink = logger.add(lambda m: warnings.append(str(m)), level="WARNING")
    logger.enable("leadfactory.llm")
    try:
        with host_client(tmp_path, "a") as client:
            first = client.chat_completion(USER)
            for _ in range(5):
                assert client.chat_completion(USER)["cached"] is True  # from memory
            other = [{"role": "user", "content": "Name a Dutch cheese."}]
            assert client.chat_completion(other)["cached"] is False
            assert client.cache.stats()["entries"] is None
    finally:
        logger.remove(sink)
        logger.disable("leadfactory.llm")
    assert first["cached"] is False
    assert len(warnings) == 1, warnings
    assert "127.0.0.1:9" in warnings[0] and "own state" in warnings[0]


def test_the_password_never_shows(monkeypatch, redis_prefix):
    url = REDIS_URL.replace("redis://", "redis://:s3cret-pw@")
    store = RedisStore(RedisLink(url, redis_prefix))
    assert "s3cret-pw" not in repr(store) + str(store.path)
    monkeypatch.setenv("LLM_CACHE_URL", "redis://:s3cret-pw@host:notaport/0")
    with pytest.raises(Exception) as raised:
        LLMConfig()
    assert "LLM_CACHE_URL" in str(raised.value) and "s3cret-pw" not in str(raised.value)
    monkeypatch.setenv("LLM_CACHE_URL", url)
    config = LLMConfig()
    assert "s3cret-pw" not in repr(config) + str(config.model_dump())


def test_the_link_waits_before_trying_a_server_that_stopped_answering():
    link = RedisLink(NOTHING_LISTENS, "x:")
    with pytest.raises(ConnectionError):
        link.run(lambda redis: redis.ping())
    assert not link.answering
    with pytest.raises(ConnectionError):
        link.run(lambda redis: pytest.fail("no attempt while the retry interval runs"))
