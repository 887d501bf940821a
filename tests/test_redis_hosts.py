"""Issue 17 acceptance, Redis half: hosts are processes that share nothing but the Redis
server (and the simulator they call): each has its own HOME, ledger and cache file.
Windows and cooldowns are short by setting (LLM_RATE_LIMIT_WINDOW, LLM_COOLDOWN_SECONDS)."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from leadfactory.llm.simulator import Fault
from tests.conftest import SENTINEL_KEY, child_environment
from tests.services import redis_keys_gone, require_redis

from .test_client_cache import provider_calls

pytestmark = pytest.mark.slow

HOST_PROGRAM = Path(__file__).with_name("redis_host.py")
STARTUP = 120.0  # seconds a host may take to import everything on a loaded machine
ANSWER = 60.0


class Host:
    """One process running tests/redis_host.py; commands in, JSON lines out."""

    def __init__(self, home: Path, env: dict[str, str]) -> None:
        self.stderr = (home / "stderr.txt").open("w")
        self.process = subprocess.Popen(
            [sys.executable, str(HOST_PROGRAM)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
            env=env,
            cwd=home,
        )
        self.home = home
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.put(line.strip())

    def line(self, timeout: float = ANSWER) -> str:
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            errors = (self.home / "stderr.txt").read_text()[-2000:]
            pytest.fail(f"host {self.home.name} said nothing for {timeout} s: {errors}")

    def send(self, **command) -> None:
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()

    def ask(self, **command) -> dict:
        self.send(**command)
        return json.loads(self.line())

    def close(self) -> None:
        if self.process.poll() is None:
            if not self.process.stdin.closed:
                self.process.stdin.close()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.stderr.close()


WINDOW = 2.0  # LLM_RATE_LIMIT_WINDOW: a short "minute"
COOLDOWN = 8.0  # longer than the second of picks below takes on a loaded machine


@pytest.fixture(scope="module")
def hosts(simulator, tmp_path_factory):
    """Four hosts for the whole module (starting one takes seconds): the simulator's
    openai (tried first) and anthropic with 100 RPM, no Ollama; limits, cooldowns and
    cache on the test Redis under a prefix of the module's own."""
    url = require_redis()
    prefix = f"lf-test:{uuid.uuid4().hex[:12]}:"
    started: list[Host] = []
    try:
        for number in range(4):
            home = tmp_path_factory.mktemp(f"host{number}")
            env = child_environment(home)
            env.update(simulator.env())
            env.update(
                OPENAI_API_KEY=SENTINEL_KEY,
                ANTHROPIC_API_KEY=SENTINEL_KEY,
                OLLAMA_ENABLED="false",
                OPENAI_PRIORITY="10",
                OPENAI_MAX_RETRIES="0",
                ANTHROPIC_RETRY_DELAY="0",
                ANTHROPIC_RATE_LIMIT_RPM="100",
                LLM_RATE_LIMIT_WINDOW=str(WINDOW),
                LLM_COOLDOWN_FAILURES="1",
                LLM_COOLDOWN_SECONDS=str(COOLDOWN),
                LLM_REDIS_URL=url,
                LLM_CACHE_URL=url,
                LLM_REDIS_KEY_PREFIX=prefix,
            )
            started.append(Host(home, env))
        for host in started:
            assert host.line(STARTUP) == "ready"
        yield started
    finally:
        for host in started:  # all at once: each then exits while the others do
            host.process.stdin.close()
        for host in started:
            host.close()
        redis_keys_gone(url, prefix)


def most_in_any_window(times: list[float], length: float) -> int:
    """The largest number of ``times`` inside one interval of ``length`` seconds."""
    times = sorted(times)
    most, first = 0, 0
    for last, at in enumerate(times):
        while at - times[first] >= length:
            first += 1
        most = max(most, last - first + 1)
    return most


def test_four_hosts_share_one_rpm_limit(hosts, sim):
    for host in hosts:  # pinned: a rate-limited call waits for a slot, never falls back
        host.send(op="burst", n=40, model="anthropic")
    started = [at for host in hosts for at in json.loads(host.line())["started"]]
    assert len(started) == 160 and None not in started
    assert sim.request_count("anthropic") == 160
    # A call starts just after its admission; 0.1 s allows for that lag under load.
    assert most_in_any_window(started, WINDOW - 0.1) <= 100
    assert max(started) - min(started) >= WINDOW - 0.1  # the limit made hosts wait


def test_a_cooldown_opened_on_one_host_keeps_every_host_away(hosts, sim):
    first, *others = hosts
    sim.set_fault("openai", Fault.UNAVAILABLE, times=1)
    assert first.ask(op="ask", content="open the breaker")["provider"] == "anthropic"
    opened = time.monotonic()
    assert sim.request_count("openai") == 1
    for host in others:
        host.send(op="pick", seconds=1.0)
    picked = [p for host in others for p in json.loads(host.line())["providers"]]
    assert picked and set(picked) == {"anthropic"}
    assert sim.request_count("openai") == 1  # no host sent openai anything
    time.sleep(max(0.0, opened + COOLDOWN + 0.2 - time.monotonic()))
    for host in others:  # the first asker probes, its success reopens openai for all
        assert "openai" in host.ask(op="pick", seconds=0.2)["providers"]
    assert sim.request_count("openai") > 1


def test_an_answer_cached_by_one_host_is_a_hit_on_another(hosts, sim):
    first, second = hosts[:2]
    asked = first.ask(op="ask", content="Name a Swiss cheese.")
    again = second.ask(op="ask", content="Name a Swiss cheese.")
    assert (asked["cached"], again["cached"]) == (False, True)
    assert provider_calls(sim) == 1


def test_four_hosts_asking_the_same_new_question_make_one_call(hosts, sim):
    for provider in ("openai", "anthropic"):
        sim.set_fault(provider, Fault.DELAY, delay=1.0)
    for host in hosts:
        host.send(op="ask", content="Name a Spanish cheese.")
    answers = [json.loads(host.line()) for host in hosts]
    assert provider_calls(sim) == 1
    assert sorted(a["cached"] for a in answers) == [False, True, True, True]
