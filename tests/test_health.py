import threading

import pytest

from leadfactory.llm.exceptions import (
    LLMAuthenticationError,
    LLMConfigurationError,
    LLMConnectionError,
    LLMError,
    LLMModelNotFoundError,
    LLMProviderError,
    LLMQuotaExceededError,
    LLMRateLimitError,
    LLMStreamInterruptedError,
    LLMTimeoutError,
    LLMValidationError,
)
from leadfactory.llm.health import COUNTED_FAILURES, HealthPolicy, ProviderHealth

from .fake_clock import FakeClock
from .fake_clock import busy_switching as busy_switching  # a fixture


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(500.0)


@pytest.fixture
def health(clock: FakeClock) -> ProviderHealth:
    return ProviderHealth(HealthPolicy(failure_threshold=3, cooldown=30.0), clock=clock)


def down(message: str = "connection refused") -> LLMConnectionError:
    return LLMConnectionError(message, provider="p")


def trip(health: ProviderHealth, provider: str = "p") -> None:
    for _ in range(health.policy.failure_threshold):
        health.record_failure(provider, down())


# -- counting ------------------------------------------------------------------------


def test_unknown_provider_is_healthy(health):
    check = health.check("new")
    assert check.allowed and check.state == "healthy" and check.until is None


def test_trips_after_threshold_consecutive_failures(clock, health):
    health.record_failure("p", down())
    health.record_failure("p", down())
    assert health.check("p").allowed
    health.record_failure("p", down())
    check = health.check("p")
    assert not check.allowed
    assert check.state == "cooling_down"
    assert check.until == pytest.approx(clock.now + 30)
    assert "3 consecutive failures" in check.reason
    assert "LLMConnectionError" in check.reason


def test_success_resets_the_streak(health):
    health.record_failure("p", down())
    health.record_failure("p", down())
    health.record_success("p")
    health.record_failure("p", down())
    health.record_failure("p", down())
    assert health.check("p").allowed
    assert health.status("p")["consecutive_failures"] == 2


@pytest.mark.parametrize(
    "error",
    [
        LLMConnectionError("refused"),
        LLMTimeoutError("read timeout"),
        LLMProviderError("502", status_code=502),
        LLMAuthenticationError("401", status_code=401),
    ],
)
def test_counted_kinds(health, error):
    for _ in range(3):
        health.record_failure("p", error)
    assert not health.check("p").allowed


@pytest.mark.parametrize(
    "error",
    [
        LLMRateLimitError("429", retry_after=2),
        LLMQuotaExceededError("quota"),
        LLMValidationError("bad request"),
        LLMConfigurationError("bad setting"),
        LLMModelNotFoundError("404"),
        LLMError("other"),
        ValueError("not ours"),
        LLMProviderError("failed in this process", metadata={"local_error": "TypeError"}),
    ],
)
def test_other_errors_neither_count_nor_reset(health, error):
    health.record_failure("p", down())
    health.record_failure("p", down())
    for _ in range(5):
        health.record_failure("p", error)
    assert health.check("p").allowed
    assert health.status("p")["consecutive_failures"] == 2
    health.record_failure("p", down())  # the streak was not broken
    assert not health.check("p").allowed


def test_counted_failures_is_data():
    assert set(COUNTED_FAILURES) == {
        LLMConnectionError,
        LLMProviderError,
        LLMAuthenticationError,
        LLMStreamInterruptedError,
    }
    assert HealthPolicy().counted == COUNTED_FAILURES


def test_policy_can_count_other_kinds(clock):
    health = ProviderHealth(
        HealthPolicy(failure_threshold=1, counted=(LLMRateLimitError,)), clock=clock
    )
    health.record_failure("p", down())
    assert health.check("p").allowed
    health.record_failure("p", LLMRateLimitError("429"))
    assert not health.check("p").allowed


def test_providers_are_independent(health):
    trip(health, "a")
    assert not health.check("a").allowed
    assert health.check("b").allowed


# -- cooldown and probe --------------------------------------------------------------


def test_cooldown_then_single_probe(clock, health):
    trip(health)
    clock.advance(29.9)
    assert not health.check("p").allowed
    clock.advance(0.1)
    probe = health.check("p")
    assert probe.allowed and probe.state == "probing"
    # Everyone else waits for the probe's result.
    for _ in range(3):
        other = health.check("p")
        assert not other.allowed
        assert other.state == "probing"
        assert other.until == pytest.approx(clock.now + 30)


def test_probe_success_closes(clock, health):
    trip(health)
    clock.advance(30)
    assert health.check("p").allowed
    health.record_success("p")
    assert health.check("p").state == "healthy"
    assert health.check("p").allowed
    assert health.status("p")["consecutive_failures"] == 0


def test_probe_failure_grows_cooldown_up_to_cap(clock):
    policy = HealthPolicy(failure_threshold=2, cooldown=30, growth=2, max_cooldown=200)
    health = ProviderHealth(policy, clock=clock)
    trip(health)
    seen = []
    for _ in range(5):
        seen.append(health.status("p")["seconds_left"])
        clock.advance(health.status("p")["seconds_left"])
        assert health.check("p").allowed  # the probe
        health.record_failure("p", LLMProviderError("503", status_code=503))
    seen.append(health.status("p")["seconds_left"])
    assert seen == [30, 60, 120, 200, 200, 200]


def test_success_after_growth_resets_cooldown(clock, health):
    trip(health)
    clock.advance(30)
    health.check("p")
    health.record_failure("p", down())  # 60 s now
    clock.advance(60)
    health.check("p")
    health.record_success("p")
    trip(health)
    assert health.status("p")["seconds_left"] == 30


def test_non_counted_probe_failure_keeps_probe_slot(clock, health):
    trip(health)
    clock.advance(30)
    assert health.check("p").allowed
    health.record_failure("p", LLMRateLimitError("429"))
    check = health.check("p")
    assert not check.allowed and check.state == "probing"


def test_stuck_probe_is_released_after_the_cooldown(clock, health):
    trip(health)
    clock.advance(30)
    assert health.check("p").allowed  # this probe's caller crashes and never reports
    clock.advance(29.9)
    assert not health.check("p").allowed
    clock.advance(0.1)
    second = health.check("p")
    assert second.allowed and second.state == "probing"
    assert not health.check("p").allowed
    health.record_success("p")
    assert health.check("p").state == "healthy"


def test_threshold_of_one(clock):
    health = ProviderHealth(HealthPolicy(failure_threshold=1, cooldown=5), clock=clock)
    health.record_failure("p", LLMAuthenticationError("401", status_code=401))
    assert not health.check("p").allowed
    clock.advance(5)
    assert health.check("p").allowed
    health.record_failure("p", down())
    assert health.status("p")["seconds_left"] == 10


def test_late_failures_while_cooling_do_not_extend(clock, health):
    trip(health)
    until = health.status("p")["cooling_down_until"]
    clock.advance(10)
    health.record_failure("p", down())  # a call that was in flight before the trip
    assert health.status("p")["cooling_down_until"] == until
    assert health.status("p")["consecutive_failures"] == 4


def test_concurrent_checks_admit_one_probe(clock, health, busy_switching):
    trip(health)
    clock.advance(30)
    start = threading.Barrier(8)
    allowed = []

    def ask() -> None:
        start.wait()
        allowed.extend(health.check("p").allowed for _ in range(200))

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert allowed.count(True) == 1


# -- status and policy ---------------------------------------------------------------


def test_status_output(clock, health):
    assert health.status("p") == {
        "state": "healthy",
        "consecutive_failures": 0,
        "cooling_down_until": None,
        "seconds_left": 0.0,
        "cooldown": None,
        "last_error": None,
        "probe_deadline": None,
    }
    trip(health)
    clock.advance(12)
    status = health.status("p")
    assert status["state"] == "cooling_down"
    assert status["consecutive_failures"] == 3
    assert status["cooling_down_until"] == pytest.approx(clock.now + 18)
    assert status["seconds_left"] == pytest.approx(18)
    assert status["cooldown"] == 30
    assert status["last_error"] == "LLMConnectionError"
    clock.advance(18)
    assert health.status("p")["seconds_left"] == 0  # status never claims the probe
    assert health.status("p")["state"] == "cooling_down"
    health.check("p")
    status = health.status("p")
    assert status["state"] == "probing"
    assert status["cooling_down_until"] is None
    assert status["probe_deadline"] == pytest.approx(clock.now + 30)


def test_status_does_not_leak_error_messages(health):
    health.record_failure("p", LLMAuthenticationError("bad key sk-secret123"))
    assert "sk-secret" not in repr(health.status("p"))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("failure_threshold", 0),
        ("cooldown", 0),
        ("cooldown", float("inf")),
        ("growth", 0.5),
        ("max_cooldown", 10.0),
    ],
)
def test_policy_validation(field, value):
    with pytest.raises(LLMConfigurationError) as info:
        HealthPolicy(**{field: value})
    assert info.value.metadata["field"] == field
