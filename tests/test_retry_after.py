"""Retry-After parsing (leadfactory.llm.retry_after): seconds, HTTP dates, milliseconds,
LiteLLM's prefixed names; garbage gives None."""

from datetime import UTC, datetime, timedelta

import pytest

from leadfactory.llm.retry_after import (
    parse_retry_after,
    parse_retry_after_ms,
    retry_after_from_headers,
)

NOW = datetime(2026, 10, 21, 7, 28, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2", 2.0),
        (" 2.5 ", 2.5),
        (2, 2.0),
        (2.5, 2.5),
        (0, 0.0),
        ("Wed, 21 Oct 2026 07:28:30 GMT", 30.0),
        ("Wed, 21 Oct 2026 07:28:00 GMT", 0.0),
        ("Wed, 21 Oct 2026 07:00:00 GMT", 0.0),  # in the past
        ("Wed, 21 Oct 2026 09:28:30 +0200", 30.0),
        (None, None),
        ("", None),
        ("soon", None),
        ("-1", None),
        (-3, None),
        ("nan", None),
        ("inf", None),
        (float("inf"), None),
        (True, None),
        ("Wed, 99 Foo 2026", None),
    ],
)
def test_parse_retry_after(value, expected):
    assert parse_retry_after(value, now=NOW) == expected


def test_parse_retry_after_date_defaults_to_current_time():
    soon = datetime.now(UTC) + timedelta(seconds=120)
    header = soon.strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert 100 < parse_retry_after(header) <= 120
    assert parse_retry_after("Thu, 01 Jan 2015 00:00:00 GMT") == 0.0


def test_parse_retry_after_naive_now_is_utc():
    naive = NOW.replace(tzinfo=None)
    assert parse_retry_after("Wed, 21 Oct 2026 07:28:10 GMT", now=naive) == 10.0


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1500", 1.5), (250, 0.25), ("x", None), (None, None), (-1, None)],
)
def test_parse_retry_after_ms(value, expected):
    assert parse_retry_after_ms(value) == expected


def test_retry_after_from_headers():
    assert retry_after_from_headers({"Retry-After": "3"}) == 3.0
    assert retry_after_from_headers({"retry-after-ms": "1200", "retry-after": "2"}) == 1.2
    assert retry_after_from_headers({"retry-after-ms": "junk", "Retry-After": "2"}) == 2.0
    assert retry_after_from_headers(
        {"retry-after": "Wed, 21 Oct 2026 07:28:05 GMT"}, now=NOW
    ) == pytest.approx(5.0)
    assert retry_after_from_headers({"content-type": "application/json"}) is None
    assert retry_after_from_headers({}) is None
    assert retry_after_from_headers(None) is None


def test_litellm_prefixed_headers():
    assert retry_after_from_headers({"llm_provider-retry-after": "4"}) == 4.0
    assert retry_after_from_headers({"llm_provider-retry-after-ms": "500"}) == 0.5
    assert (
        retry_after_from_headers({"retry-after": "9", "llm_provider-retry-after-ms": "500"}) == 0.5
    )
