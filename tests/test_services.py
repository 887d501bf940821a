"""The skip-or-fail rule for tests that need PostgreSQL or Redis."""

from __future__ import annotations

import pytest

from tests import services


def test_a_missing_server_skips_with_what_to_start(monkeypatch):
    monkeypatch.delenv("LF_REQUIRE_SERVICES", raising=False)
    with pytest.raises(pytest.skip.Exception, match="start Redis 7"):
        services.require("Redis", "redis://127.0.0.1:9/0", 6379)


def test_ci_turns_the_skip_into_a_failure(monkeypatch):
    monkeypatch.setenv("LF_REQUIRE_SERVICES", "1")
    with pytest.raises(pytest.fail.Exception, match="PostgreSQL is not reachable"):
        services.require("PostgreSQL", "postgresql://u:pw@127.0.0.1:9/test", 5432)


def test_the_message_never_shows_a_password(monkeypatch):
    monkeypatch.delenv("LF_REQUIRE_SERVICES", raising=False)
    with pytest.raises(pytest.skip.Exception) as skipped:
        services.require("PostgreSQL", "postgresql://u:hunter2@127.0.0.1:9/test", 5432)
    assert "hunter2" not in str(skipped.value)
