"""RPM/TPM windows, pauses and cooldowns on Redis (LLM_REDIS_URL): the same rules as
the in-process limiter and breakers, shared by every limiter on the server, and this
process's own state while the server is away. Two objects on one server stand for
two hosts here; tests/test_redis_hosts.py uses real processes."""

from __future__ import annotations

import time

import pytest

from leadfactory.llm.exceptions import LLMConnectionError, LLMRateLimitError
from leadfactory.llm.health import HealthPolicy, ProviderHealth
from leadfactory.llm.ratelimit import Denied, Permit, RateLimiter
from leadfactory.llm.redis_health import RedisProviderHealth
from leadfactory.llm.redis_limits import RedisRateLimiter
from leadfactory.llm.redis_link import RedisLink
from leadfactory.llm.shared_state import Health, Limiter
from tests.services import REDIS_URL

NOTHING_LISTENS = "redis://127.0.0.1:9/0"


@pytest.fixture
def hosts(redis_prefix):
    """Makes limiters that share one Redis and nothing else (window in seconds)."""

    def limiter(window: float = 60.0, url: str = REDIS_URL) -> RedisRateLimiter:
        return RedisRateLimiter(RedisLink(url, redis_prefix), RateLimiter(window=window))

    return limiter


@pytest.fixture(params=["local", "redis"])
def any_limiter(request):
    """The in-process limiter and the Redis one: the rules they share."""
    if request.param == "local":
        return lambda: RateLimiter()
    prefix = request.getfixturevalue("redis_prefix")
    return lambda: RedisRateLimiter(RedisLink(REDIS_URL, prefix), RateLimiter())


def test_both_fit_the_seams(any_limiter, redis_prefix):
    assert isinstance(any_limiter(), Limiter)
    link = RedisLink(REDIS_URL, redis_prefix)
    assert isinstance(RedisProviderHealth(link, ProviderHealth()), Health)
    assert isinstance(ProviderHealth(), Health)


def test_rpm_admits_the_limit_then_says_how_long_to_wait(any_limiter):
    limiter = any_limiter()
    limiter.configure("openai", rpm=3, tpm=None)
    assert all(isinstance(limiter.acquire("openai", 10), Permit) for _ in range(3))
    denied = limiter.acquire("openai", 10)
    assert isinstance(denied, Denied) and denied.reason == "rpm"
    assert 0 < denied.wait <= 60
    assert limiter.status("openai")["requests_in_window"] == 3


def test_tpm_reserves_the_estimate_and_is_corrected_by_usage(any_limiter):
    limiter = any_limiter()
    limiter.configure("openai", rpm=None, tpm=100)
    permit = limiter.acquire("openai", 80)
    assert isinstance(permit, Permit)
    assert limiter.acquire("openai", 30).reason == "tpm"
    limiter.correct(permit, 50)  # the real usage
    assert isinstance(limiter.acquire("openai", 30), Permit)
    assert limiter.status("openai")["tokens_in_window"] == 80
    assert limiter.acquire("openai", 101).wait == float("inf")  # never fits


def test_release_gives_the_slot_back_once(any_limiter):
    limiter = any_limiter()
    limiter.configure("openai", rpm=1, tpm=None)
    permit = limiter.acquire("openai", 5)
    limiter.release(permit)
    limiter.release(permit)
    again = limiter.acquire("openai", 5)
    assert isinstance(again, Permit)
    assert limiter.status("openai") == {
        "rpm": 1,
        "tpm": None,
        "requests_in_window": 1,
        "tokens_in_window": 5,
        "paused_for": 0.0,
    }


def test_a_pause_extends_and_never_shortens(any_limiter):
    limiter = any_limiter()
    limiter.pause("anthropic", 30)
    limiter.pause("anthropic", 1)
    denied = limiter.acquire("anthropic", 1)
    assert denied.reason == "paused" and 29 < denied.wait <= 30
    assert limiter.paused_until("openai") is None and limiter.paused_until("anthropic")


def test_hosts_share_the_window(hosts):
    first, second = hosts(), hosts()
    for limiter in (first, second):
        limiter.configure("openai", rpm=3, tpm=None)
    assert isinstance(first.acquire("openai", 1), Permit)
    assert isinstance(first.acquire("openai", 1), Permit)
    assert isinstance(second.acquire("openai", 1), Permit)
    denied = second.acquire("openai", 1)
    assert denied.reason == "rpm" and "on all hosts" in denied.detail
    assert first.status("openai")["requests_in_window"] == 3


def test_a_correction_goes_with_the_next_command(hosts):
    first, second = hosts(), hosts()
    for limiter in (first, second):
        limiter.configure("openai", rpm=None, tpm=1000)
    permit = first.acquire("openai", 800)
    first.correct(permit, 100)  # held back: no round trip of its own
    assert second.status("openai")["tokens_in_window"] == 800
    assert isinstance(first.acquire("openai", 10), Permit)  # sent with this, before it
    assert second.status("openai")["tokens_in_window"] == 110
    first.correct(permit, 50)
    first.flush()  # as the client does when it closes
    assert second.status("openai")["tokens_in_window"] == 60


def test_scripts_the_server_forgot_are_loaded_again_in_a_pipeline(hosts):
    limiter = hosts()
    permit = limiter.acquire("openai", 50)
    limiter.correct(permit, 20)
    client = limiter._link.client()
    for script in (limiter._correct, limiter._acquire):  # as after SCRIPT FLUSH
        script.sha(client)
        script._script.sha = "0" * 40
    assert isinstance(limiter.acquire("openai", 5), Permit)
    assert limiter.status("openai")["tokens_in_window"] == 25


def test_a_pause_is_cut_to_the_cap(hosts):
    limiter = hosts()
    assert limiter.pause("openai", 3600, cap=5) == 5
    assert 4 < limiter.acquire("openai", 1).wait <= 5
    assert limiter.pause("openai", -1) == 0.0


def test_a_pause_on_one_host_holds_every_host(hosts):
    first, second = hosts(), hosts()
    first.pause("openai", 5)
    assert second.acquire("openai", 1).reason == "paused"
    assert second.status("openai")["paused_for"] > 4


def test_requests_leave_the_window_after_its_length(hosts):
    limiter = hosts(window=0.3)  # LLM_RATE_LIMIT_WINDOW, short for the test
    limiter.configure("openai", rpm=1, tpm=None)
    assert isinstance(limiter.acquire("openai", 1), Permit)
    denied = limiter.acquire("openai", 1)
    assert denied.reason == "rpm" and denied.wait <= 0.3
    time.sleep(denied.wait + 0.05)
    assert isinstance(limiter.acquire("openai", 1), Permit)


def test_without_the_server_limits_hold_in_this_process(hosts):
    limiter = hosts(url=NOTHING_LISTENS)
    limiter.configure("openai", rpm=2, tpm=None)
    first = limiter.acquire("openai", 1)
    assert isinstance(first, Permit) and first.ticket > 0  # a local permit
    assert isinstance(limiter.acquire("openai", 1), Permit)
    assert limiter.acquire("openai", 1).reason == "rpm"
    limiter.release(first)
    assert isinstance(limiter.acquire("openai", 1), Permit)
    limiter.pause("anthropic", 5)
    assert limiter.acquire("anthropic", 1).reason == "paused"
    assert not limiter.shared


# -- cooldowns ---------------------------------------------------------------------------

POLICY = HealthPolicy(failure_threshold=2, cooldown=0.3, max_cooldown=10)


def breakers(prefix: str, url: str = REDIS_URL) -> RedisProviderHealth:
    return RedisProviderHealth(RedisLink(url, prefix), ProviderHealth(POLICY))


def test_a_breaker_opened_on_one_host_keeps_the_others_away(redis_prefix):
    first, second = breakers(redis_prefix), breakers(redis_prefix)
    outage = LLMConnectionError("refused", provider="openai")
    first.record_failure("openai", outage)
    assert second.check("openai").allowed  # one failure: below the threshold
    second.record_failure("openai", outage)
    check = first.check("openai")
    assert not check.allowed and check.state == "cooling_down"
    assert not second.check("openai").allowed
    assert second.status("openai")["state"] == "cooling_down"
    assert second.status("openai")["consecutive_failures"] == 2
    assert second.status("openai")["last_error"] == "LLMConnectionError"


def test_after_the_cooldown_one_host_probes_and_its_success_reopens_for_all(redis_prefix):
    first, second = breakers(redis_prefix), breakers(redis_prefix)
    outage = LLMConnectionError("refused", provider="openai")
    for _ in range(2):
        first.record_failure("openai", outage)
    time.sleep(0.35)
    probe, other = first.check("openai"), second.check("openai")
    assert (probe.allowed, probe.state) == (True, "probing")
    assert (other.allowed, other.state) == (False, "probing")
    first.record_success("openai")
    assert second.check("openai").allowed and second.status("openai")["state"] == "healthy"


def test_a_success_clears_the_failures_its_check_saw(redis_prefix):
    """No round trip for a success when nothing was counted before its request; a failure
    counted meanwhile by another host is cleared by the next success."""
    first, second = breakers(redis_prefix), breakers(redis_prefix)
    outage = LLMConnectionError("refused", provider="openai")
    assert first.check("openai").allowed  # nothing counted on any host
    second.record_failure("openai", outage)  # while first's request is in flight
    first.record_success("openai")  # as if it came before that failure
    assert second.status("openai")["consecutive_failures"] == 1
    assert first.check("openai").allowed
    first.record_success("openai")
    assert second.status("openai")["consecutive_failures"] == 0
    first.record_failure("openai", outage)  # counted here: the next success clears it
    first.record_success("openai")
    assert second.status("openai")["consecutive_failures"] == 0


def test_a_failed_probe_reopens_with_a_longer_cooldown(redis_prefix):
    health = breakers(redis_prefix)
    outage = LLMConnectionError("refused", provider="openai")
    for _ in range(2):
        health.record_failure("openai", outage)
    time.sleep(0.35)
    assert health.check("openai").allowed
    health.record_failure("openai", outage)
    assert health.status("openai")["cooldown"] == pytest.approx(0.6)
    assert not health.check("openai").allowed


def test_failures_that_say_nothing_about_the_provider_are_not_counted(redis_prefix):
    health = breakers(redis_prefix)
    for _ in range(3):
        health.record_failure("openai", LLMRateLimitError("slow down", provider="openai"))
    assert health.status("openai")["consecutive_failures"] == 0


def test_without_the_server_cooldowns_hold_in_this_process(redis_prefix):
    health = breakers(redis_prefix, NOTHING_LISTENS)
    outage = LLMConnectionError("refused", provider="openai")
    for _ in range(2):
        health.record_failure("openai", outage)
    assert health.check("openai").state == "cooling_down"
    assert health.status("openai")["consecutive_failures"] == 2


def test_redis_py_is_imported_only_when_a_url_is_set(tmp_path):
    import json
    import subprocess
    import sys

    from tests.conftest import child_environment

    code = (
        "import sys; from leadfactory.llm import LLMClient; client = LLMClient();"
        "client.get_provider_status(); client.close(); print('redis' in sys.modules)"
    )
    env = child_environment(tmp_path)
    plain = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    env["LLM_REDIS_URL"] = NOTHING_LISTENS
    shared = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert json.loads(plain.stdout.strip().lower()) is False, plain.stderr
    assert json.loads(shared.stdout.strip().lower()) is True, shared.stderr


def test_the_window_is_a_setting(monkeypatch, redis_prefix):
    from leadfactory.llm import LLMClient

    monkeypatch.setenv("LLM_RATE_LIMIT_WINDOW", "2.5")
    assert LLMClient()._limiter.window == 2.5
    monkeypatch.setenv("LLM_REDIS_URL", REDIS_URL)
    monkeypatch.setenv("LLM_REDIS_KEY_PREFIX", redis_prefix)
    shared = LLMClient()._limiter
    assert isinstance(shared, RedisRateLimiter) and shared.window == 2.5
