import math
import multiprocessing
import threading
import time

import pytest

from leadfactory.llm.exceptions import LLMConfigurationError
from leadfactory.llm.health import ProviderHealth
from leadfactory.llm.ratelimit import (
    Denied,
    Permit,
    RateLimiter,
)

from .fake_clock import FakeClock
from .fake_clock import busy_switching as busy_switching  # a fixture


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def limiter(clock: FakeClock) -> RateLimiter:
    return RateLimiter(clock=clock)


# -- RPM -----------------------------------------------------------------------------


def test_rpm_window_slides(clock, limiter):
    limiter.configure("openai", rpm=60, tpm=None)
    for _ in range(60):
        assert isinstance(limiter.acquire("openai", 10), Permit)
        clock.advance(0.5)  # requests at t0, t0+0.5, ... t0+29.5; now t0+30

    denied = limiter.acquire("openai", 10)
    assert isinstance(denied, Denied)
    assert denied.reason == "rpm"
    assert denied.provider == "openai"
    assert denied.wait == pytest.approx(30.0)  # the first request ages out at t0+60
    assert "60 requests" in denied.detail

    clock.advance(denied.wait)
    assert isinstance(limiter.acquire("openai", 10), Permit)
    # Only one slot freed: the next has to wait for the second-oldest (t0+0.5).
    again = limiter.acquire("openai", 10)
    assert isinstance(again, Denied)
    assert again.wait == pytest.approx(0.5)


def test_rpm_61st_request_in_a_burst_waits_a_full_window(clock, limiter):
    limiter.configure("p", rpm=60, tpm=None)
    assert all(isinstance(limiter.acquire("p", 1), Permit) for _ in range(60))
    clock.advance(10)
    denied = limiter.acquire("p", 1)
    assert isinstance(denied, Denied) and denied.wait == pytest.approx(50.0)
    clock.advance(49.999)
    assert isinstance(limiter.acquire("p", 1), Denied)
    clock.advance(0.001)
    permits = [limiter.acquire("p", 1) for _ in range(61)]
    assert sum(isinstance(p, Permit) for p in permits) == 60


def test_unconfigured_provider_is_unlimited_but_recorded(limiter):
    for _ in range(1000):
        assert isinstance(limiter.acquire("local", 10_000), Permit)
    status = limiter.status("local")
    assert status["rpm"] is None and status["tpm"] is None
    assert status["requests_in_window"] == 1000
    assert status["tokens_in_window"] == 10_000_000


def test_reconfigure_keeps_history(clock, limiter):
    limiter.configure("p", rpm=10, tpm=None)
    for _ in range(5):
        limiter.acquire("p", 1)
    limiter.configure("p", rpm=5, tpm=None)
    assert isinstance(limiter.acquire("p", 1), Denied)
    limiter.configure("p", rpm=None, tpm=None)
    assert isinstance(limiter.acquire("p", 1), Permit)
    assert limiter.status("p")["requests_in_window"] == 6


def test_providers_are_independent(limiter):
    limiter.configure("a", rpm=1, tpm=None)
    limiter.configure("b", rpm=1, tpm=None)
    assert isinstance(limiter.acquire("a", 1), Permit)
    assert isinstance(limiter.acquire("b", 1), Permit)
    assert isinstance(limiter.acquire("a", 1), Denied)


def test_custom_window(clock):
    limiter = RateLimiter(clock=clock, window=1.0)
    limiter.configure("p", rpm=2, tpm=None)
    limiter.acquire("p", 1)
    limiter.acquire("p", 1)
    denied = limiter.acquire("p", 1)
    assert isinstance(denied, Denied) and denied.wait == pytest.approx(1.0)
    clock.advance(1.0)
    assert isinstance(limiter.acquire("p", 1), Permit)


@pytest.mark.parametrize(
    "kwargs",
    [{"rpm": 0, "tpm": None}, {"rpm": None, "tpm": -5}, {"rpm": 1.5, "tpm": None}],
)
def test_configure_rejects_bad_limits(limiter, kwargs):
    with pytest.raises(LLMConfigurationError) as info:
        limiter.configure("p", **kwargs)
    assert info.value.metadata["field"] in kwargs


def test_bad_window_and_tokens_are_rejected(limiter):
    with pytest.raises(LLMConfigurationError):
        RateLimiter(window=0)
    with pytest.raises(ValueError):
        limiter.acquire("p", -1)


# -- TPM -----------------------------------------------------------------------------


def test_tpm_counts_tokens(clock, limiter):
    limiter.configure("p", rpm=None, tpm=1000)
    assert isinstance(limiter.acquire("p", 400), Permit)
    clock.advance(10)
    assert isinstance(limiter.acquire("p", 400), Permit)
    clock.advance(10)
    assert isinstance(limiter.acquire("p", 200), Permit)  # exactly 1000: fits

    denied = limiter.acquire("p", 1)
    assert isinstance(denied, Denied)
    assert denied.reason == "tpm"
    assert denied.wait == pytest.approx(40.0)  # the first 400 leave at +60, now +20

    big = limiter.acquire("p", 700)  # needs the first two entries gone
    assert isinstance(big, Denied) and big.wait == pytest.approx(50.0)

    clock.advance(40)
    assert isinstance(limiter.acquire("p", 400), Permit)
    assert limiter.status("p")["tokens_in_window"] == 1000


def test_estimate_larger_than_tpm_never_fits(limiter):
    limiter.configure("p", rpm=None, tpm=1000)
    denied = limiter.acquire("p", 1001)
    assert isinstance(denied, Denied)
    assert denied.reason == "tpm"
    assert denied.wait == math.inf
    assert "never" in denied.detail
    assert limiter.status("p")["requests_in_window"] == 0


def test_never_fits_wins_over_pause(limiter):
    limiter.configure("p", rpm=None, tpm=10)
    limiter.pause("p", 5)
    assert limiter.acquire("p", 11).wait == math.inf


def test_correction_down_makes_room(limiter):
    limiter.configure("p", rpm=None, tpm=1000)
    permit = limiter.acquire("p", 900)
    assert isinstance(limiter.acquire("p", 500), Denied)
    limiter.correct(permit, 300)
    assert limiter.status("p")["tokens_in_window"] == 300
    assert isinstance(limiter.acquire("p", 500), Permit)


def test_correction_up_takes_room(clock, limiter):
    limiter.configure("p", rpm=None, tpm=1000)
    permit = limiter.acquire("p", 100)
    clock.advance(5)
    limiter.correct(permit, 1200)  # the provider reports more than the limit allows
    assert limiter.status("p")["tokens_in_window"] == 1200
    denied = limiter.acquire("p", 1)
    assert isinstance(denied, Denied) and denied.wait == pytest.approx(55.0)
    clock.advance(55)
    assert isinstance(limiter.acquire("p", 1000), Permit)


def test_correction_after_entry_aged_out_is_ignored(clock, limiter):
    limiter.configure("p", rpm=None, tpm=1000)
    permit = limiter.acquire("p", 100)
    clock.advance(61)
    limiter.correct(permit, 900)
    assert limiter.status("p")["tokens_in_window"] == 0


def test_correction_of_negative_usage_clamps_to_zero(limiter):
    permit = limiter.acquire("p", 100)
    limiter.correct(permit, -5)
    assert limiter.status("p")["tokens_in_window"] == 0


# -- release -------------------------------------------------------------------------


def test_release_gives_the_slot_and_tokens_back(limiter):
    limiter.configure("p", rpm=2, tpm=100)
    first = limiter.acquire("p", 50)
    limiter.acquire("p", 50)
    assert isinstance(limiter.acquire("p", 1), Denied)
    limiter.release(first)
    assert limiter.status("p") | {"paused_for": 0} == {
        "rpm": 2,
        "tpm": 100,
        "requests_in_window": 1,
        "tokens_in_window": 50,
        "paused_for": 0,
    }
    assert isinstance(limiter.acquire("p", 50), Permit)


def test_release_twice_or_after_correction_is_safe(limiter):
    limiter.configure("p", rpm=5, tpm=None)
    permit = limiter.acquire("p", 50)
    other = limiter.acquire("p", 10)
    limiter.correct(permit, 70)
    limiter.release(permit)
    limiter.release(permit)
    limiter.correct(permit, 500)  # released: no effect
    assert limiter.status("p")["requests_in_window"] == 1
    assert limiter.status("p")["tokens_in_window"] == 10
    limiter.release(other)
    assert limiter.status("p")["tokens_in_window"] == 0


def test_permit_from_another_limiter_matches_nothing(clock):
    a, b = RateLimiter(clock=clock), RateLimiter(clock=clock)
    permit_a = a.acquire("p", 10)
    b.acquire("p", 20)
    b.release(permit_a)
    assert b.status("p")["requests_in_window"] == 1


# -- pauses --------------------------------------------------------------------------


def test_pause_denies_until_retry_after(clock, limiter):
    limiter.pause("p", 2.5)
    assert limiter.paused_until("p") == pytest.approx(clock.now + 2.5)
    denied = limiter.acquire("p", 1)
    assert isinstance(denied, Denied)
    assert denied.reason == "paused"
    assert denied.wait == pytest.approx(2.5)
    assert limiter.status("p")["paused_for"] == pytest.approx(2.5)
    clock.advance(2.5)
    assert limiter.paused_until("p") is None
    assert limiter.status("p")["paused_for"] == 0
    assert isinstance(limiter.acquire("p", 1), Permit)


def test_pause_extends_but_never_shortens(clock, limiter):
    limiter.pause("p", 10)
    end = limiter.paused_until("p")
    clock.advance(1)
    limiter.pause("p", 2)  # would end at +3: shorter, ignored
    assert limiter.paused_until("p") == end
    limiter.pause("p", 20)  # ends at +21: longer, taken
    assert limiter.paused_until("p") == pytest.approx(clock.now + 20)
    limiter.pause("p", 0)
    limiter.pause("p", -3)
    limiter.pause("p", float("nan"))
    assert limiter.paused_until("p") == pytest.approx(clock.now + 20)


def test_pause_is_per_provider(limiter):
    limiter.pause("a", 5)
    assert isinstance(limiter.acquire("b", 1), Permit)
    assert limiter.paused_until("b") is None
    assert limiter.paused_until("never-seen") is None


def test_longest_wait_is_reported(clock, limiter):
    limiter.configure("p", rpm=1, tpm=None)
    limiter.acquire("p", 1)
    limiter.pause("p", 5)
    denied = limiter.acquire("p", 1)
    assert denied.reason == "rpm" and denied.wait == pytest.approx(60)
    assert "paused" in denied.detail
    limiter.pause("p", 100)
    denied = limiter.acquire("p", 1)
    assert denied.reason == "paused" and denied.wait == pytest.approx(100)


def test_status_of_unknown_provider(limiter):
    assert limiter.status("nobody") == {
        "rpm": None,
        "tpm": None,
        "requests_in_window": 0,
        "tokens_in_window": 0,
        "paused_for": 0.0,
    }


# -- threads -------------------------------------------------------------------------


def test_threads_admit_exactly_the_limit(clock, busy_switching):
    limiter = RateLimiter(clock=clock)
    limiter.configure("p", rpm=100, tpm=None)
    start = threading.Barrier(8)
    admitted: list[int] = []

    def hammer() -> None:
        start.wait()
        count = sum(isinstance(limiter.acquire("p", 1), Permit) for _ in range(500))
        admitted.append(count)

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(admitted) == 100
    assert limiter.status("p")["requests_in_window"] == 100


def test_threads_with_release_and_correct_keep_totals_consistent(clock, busy_switching):
    limiter = RateLimiter(clock=clock)
    limiter.configure("p", rpm=None, tpm=None)

    def work() -> None:
        for i in range(300):
            permit = limiter.acquire("p", 10)
            if i % 3 == 0:
                limiter.release(permit)
            else:
                limiter.correct(permit, 7)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    status = limiter.status("p")
    assert status["requests_in_window"] == 8 * 200
    assert status["tokens_in_window"] == 8 * 200 * 7


# -- forks ---------------------------------------------------------------------------------


def _use_in_child(limiter: RateLimiter, health: ProviderHealth) -> None:
    limiter.acquire("p", 1)  # blocks forever on a lock inherited held
    health.record_success("p")


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="no fork")
@pytest.mark.parametrize("holder", ["limiter", "health"])
def test_a_child_forked_while_a_thread_holds_the_lock_can_use_it(holder):
    limiter, health = RateLimiter(), ProviderHealth()
    lock = limiter._lock if holder == "limiter" else health._lock
    inside = threading.Event()

    def hold_briefly() -> None:  # a thread in the middle of an update at the fork
        with lock:
            inside.set()
            time.sleep(0.3)

    thread = threading.Thread(target=hold_briefly)
    thread.start()
    assert inside.wait(10)
    child = multiprocessing.get_context("fork").Process(
        target=_use_in_child, args=(limiter, health)
    )
    child.start()
    thread.join()
    child.join(timeout=20)
    if child.is_alive():
        child.kill()
        child.join()
        pytest.fail(f"the child blocked on the {holder}'s lock it inherited held")
    assert child.exitcode == 0
    assert isinstance(limiter.acquire("p", 1), Permit)  # the parent goes on too
