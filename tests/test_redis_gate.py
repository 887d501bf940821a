"""The breaker's check and the rate-limit admission in one Redis round trip
(leadfactory.llm.redis_gate): the same answers as asking them one after the other."""

from __future__ import annotations

import time

import pytest

from leadfactory.llm.exceptions import LLMConnectionError
from leadfactory.llm.health import HealthPolicy, ProviderHealth
from leadfactory.llm.ratelimit import Denied, Permit, RateLimiter
from leadfactory.llm.redis_health import RedisProviderHealth
from leadfactory.llm.redis_limits import RedisRateLimiter
from leadfactory.llm.redis_link import RedisLink
from leadfactory.llm.shared_state import check_and_acquire
from tests.services import REDIS_URL

POLICY = HealthPolicy(failure_threshold=1, cooldown=0.3, max_cooldown=10)
NOTHING_LISTENS = "redis://127.0.0.1:9/0"


def host(prefix: str, url: str = REDIS_URL, rpm: int | None = 2):
    link = RedisLink(url, prefix)
    limiter = RedisRateLimiter(link, RateLimiter(window=60.0))
    limiter.configure("openai", rpm=rpm, tpm=None)
    return RedisProviderHealth(link, ProviderHealth(POLICY)), limiter, link


def count_trips(link: RedisLink) -> list[int]:
    trips = [0]
    run = link.run

    def counted(action):
        trips[0] += 1
        return run(action)

    link.run = counted  # type: ignore[method-assign]
    return trips


def test_one_round_trip_gives_the_check_and_the_permit(redis_prefix):
    health, limiter, link = host(redis_prefix)
    trips = count_trips(link)
    check, permit = check_and_acquire(health, limiter, "openai", 10)
    assert check.allowed and check.state == "healthy"
    assert isinstance(permit, Permit) and permit.ticket < 0
    limiter.correct(permit, 7)  # held back: goes with the next trip
    check, permit = check_and_acquire(health, limiter, "openai", 10)
    assert isinstance(permit, Permit)
    assert trips[0] == 2
    assert limiter.status("openai")["tokens_in_window"] == 17
    denied = check_and_acquire(health, limiter, "openai", 10)[1]
    assert isinstance(denied, Denied) and denied.reason == "rpm"
    health.record_success("openai")  # no failure counted anywhere: no trip
    assert trips[0] == 4  # the status above, and the denied admission


def test_a_cooling_breaker_takes_no_permit(redis_prefix):
    (health, limiter, _), (other, _, _) = host(redis_prefix), host(redis_prefix)
    other.record_failure("openai", LLMConnectionError("down", provider="openai"))
    check, permit = check_and_acquire(health, limiter, "openai", 10)
    assert (check.allowed, check.state, permit) == (False, "cooling_down", None)
    assert limiter.status("openai")["requests_in_window"] == 0
    time.sleep(0.35)  # the cooldown passes: this host is the one that probes
    check, permit = check_and_acquire(health, limiter, "openai", 10)
    assert (check.allowed, check.state) == (True, "probing")
    assert isinstance(permit, Permit)
    waiting = other.check("openai")
    assert (waiting.allowed, waiting.state) == (False, "probing")  # the probe is in flight
    health.record_success("openai")
    assert check_and_acquire(other, limiter, "openai", 10)[0].allowed


def test_never_fitting_and_unshared_cases_leave_the_permit_to_the_caller(redis_prefix):
    health, limiter, _ = host(redis_prefix)
    limiter.configure("openai", rpm=None, tpm=5)
    check, permit = check_and_acquire(health, limiter, "openai", 6)
    assert check.allowed and permit is None
    _, elsewhere, _ = host(redis_prefix)  # another link: not one round trip
    assert check_and_acquire(health, elsewhere, "openai", 1)[1] is None
    local = ProviderHealth(POLICY)
    assert check_and_acquire(local, RateLimiter(), "openai", 1) == (local.check("openai"), None)


def test_without_the_server_the_local_breaker_decides(redis_prefix):
    health, limiter, _ = host(redis_prefix, NOTHING_LISTENS)
    health.record_failure("openai", LLMConnectionError("down", provider="openai"))
    check, permit = check_and_acquire(health, limiter, "openai", 1)
    assert (check.allowed, check.state, permit) == (False, "cooling_down", None)


def test_commands_are_written_as_redis_py_writes_them():
    from redis._parsers.encoders import Encoder
    from redis.connection import PythonRespSerializer
    from redis.exceptions import DataError

    from leadfactory.llm.redis_link import _packed

    encoder = Encoder("utf-8", "strict", False)
    serializer = PythonRespSerializer(6000, encoder.encode)
    commands = [
        ("EVALSHA", "ab" * 20, 2, "prefix:clé", b"raw\r\n", 1.5, 2.0, -7, 10**20, ""),
        ("EVALSHA", "cd" * 20, 0, 0.1),
    ]
    assert _packed(encoder, commands) == b"".join(
        b"".join(serializer.pack(*command)) for command in commands
    )
    for refused in (True, None, [1]):
        with pytest.raises(DataError):
            _packed(encoder, [("EVALSHA", refused)])
