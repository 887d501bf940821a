"""Redis away (issue 17): the limiter, the cooldowns and the cache fall back to this
process's own state with one warning and a flag in ``status``, and use Redis again when
it returns; never a crash. Against a port where nothing listens, and against a second
redis-server this test starts, stops mid-run and starts again."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import uuid

import pytest
import redis
from loguru import logger

from leadfactory.llm import LLMClient
from leadfactory.llm.redis_link import RETRY_AFTER
from leadfactory.llm.shared_state import describe_backends
from tests.services import answers

NOTHING_LISTENS = "redis://127.0.0.1:9/0"


@pytest.fixture
def warnings():
    """The WARNING lines the library logs during the test."""
    lines: list[str] = []
    sink = logger.add(lambda message: lines.append(str(message)), level="WARNING")
    logger.enable("leadfactory.llm")
    yield lines
    logger.remove(sink)
    logger.disable("leadfactory.llm")


class OwnRedis:
    """A redis-server of this test's own on a free port, keeping nothing on disk."""

    def __init__(self, workdir) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.workdir = workdir
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
            + ["--appendonly", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not answers(self.url, self.port, timeout=0.2):
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def keys(self, pattern: str) -> list[bytes]:
        client = redis.Redis.from_url(self.url)
        try:
            return list(client.scan_iter(match=pattern))
        finally:
            client.close()


@pytest.fixture
def own_redis(tmp_path):
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed: install Redis 7 to run this test")
    server = OwnRedis(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def paid_only(sim_env, monkeypatch):
    monkeypatch.setenv("OLLAMA_ENABLED", "false")
    monkeypatch.setenv("ANTHROPIC_RATE_LIMIT_RPM", "1000")
    return sim_env


def ask(client: LLMClient, content: str) -> dict:
    return client.chat_completion([{"role": "user", "content": content}], max_tokens=20)


def test_nothing_listening_means_local_state_and_one_warning(paid_only, monkeypatch, warnings):
    monkeypatch.setenv("LLM_REDIS_URL", NOTHING_LISTENS)
    monkeypatch.setenv("LLM_CACHE_URL", NOTHING_LISTENS)
    monkeypatch.setenv("LLM_REDIS_KEY_PREFIX", f"{uuid.uuid4().hex}:")  # a link of its own
    with LLMClient() as client:
        answered = [ask(client, f"question {i}") for i in range(5)]
        assert ask(client, "question 0")["cached"] is True  # from this process's memory
        status = client.get_provider_status()["anthropic"]
        assert status["requests_in_window"] == 5  # counted by the local limiter
        backends = describe_backends(client.config)
    assert all(a["provider"] == "anthropic" for a in answered)
    assert len(warnings) == 1, warnings
    assert backends["limits"]["answers"] is False and backends["cache"]["answers"] is False


def test_a_server_stopped_mid_run_and_started_again(paid_only, monkeypatch, own_redis, warnings):
    monkeypatch.setenv("LLM_REDIS_URL", own_redis.url)
    monkeypatch.setenv("LLM_CACHE_URL", own_redis.url)
    with LLMClient() as client:
        assert ask(client, "before")["cached"] is False
        assert own_redis.keys("leadfactory-llm:limits:anthropic:*")
        assert own_redis.keys("leadfactory-llm:cache:e:*")
        own_redis.stop()
        during = [ask(client, f"during {i}") for i in range(5)]
        assert all(not a["cached"] for a in during)
        assert ask(client, "before")["cached"] is True  # memory still has it
        assert describe_backends(client.config)["limits"]["answers"] is False
        assert len(warnings) == 1, warnings
        own_redis.start()  # empty: it kept nothing
        time.sleep(RETRY_AFTER + 0.1)  # the link tries the server again after this
        assert ask(client, "after")["cached"] is False
        assert own_redis.keys("leadfactory-llm:limits:anthropic:*")  # shared again
        assert own_redis.keys("leadfactory-llm:cache:e:*")
        assert describe_backends(client.config)["limits"]["answers"] is True
    assert len(warnings) == 1, warnings


def test_status_names_the_backends_and_whether_they_answer(
    paid_only, monkeypatch, capsys, redis_prefix
):
    from leadfactory.llm.cli import main
    from leadfactory.llm.redis_link import public_url
    from tests.services import REDIS_URL

    assert main(["status"]) == 0
    assert "rate limits, pauses, cooldowns: per process (set LLM_REDIS_URL" in (
        capsys.readouterr().out
    )
    monkeypatch.setenv("LLM_REDIS_KEY_PREFIX", redis_prefix)
    monkeypatch.setenv("LLM_REDIS_URL", REDIS_URL.replace("redis://", "redis://:pw-secret@"))
    monkeypatch.setenv("LLM_CACHE_URL", NOTHING_LISTENS)
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    assert f"rate limits, pauses, cooldowns: {public_url(REDIS_URL)}, answers" in out
    assert "cache: redis://127.0.0.1:9/0, NOT ANSWERING" in out
    assert "pw-secret" not in out
    main(["config", "check"])
    out = capsys.readouterr().out
    assert "cache: redis://127.0.0.1:9/0, NOT ANSWERING" in out and "pw-secret" not in out
