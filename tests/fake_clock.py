"""A monotonic clock that moves only when a test (or a flow asking to sleep) moves it,
and a fixture that makes thread races show up."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest


class FakeClock:
    """Seconds, as ``time.monotonic`` gives them; ``sleep`` records and advances."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def busy_switching() -> Iterator[None]:
    """Switch threads as often as possible, so races show up."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(old)
