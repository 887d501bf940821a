"""Retry-After, read in one place: how long a provider asked us to wait.

``Retry-After`` holds delay-seconds or an HTTP date; OpenAI also sends ``retry-after-ms``;
LiteLLM passes the provider's headers on with an ``llm_provider-`` prefix. The classifier
reads an error's headers with :func:`retry_after_from_headers`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

__all__ = ["parse_retry_after", "parse_retry_after_ms", "retry_after_from_headers"]


def _seconds(value: object) -> float | None:
    """A finite, non-negative number from an int, float or numeric string; else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if not isinstance(value, int | float):
        return None
    number = float(value)
    if not math.isfinite(number) or number < 0:
        return None
    return number


def parse_retry_after(
    value: str | float | int | None, *, now: datetime | None = None
) -> float | None:
    """Seconds to wait from a Retry-After value: delay-seconds (``"2"``, ``"2.5"``,
    ``2``) or an HTTP date (``"Wed, 21 Oct 2026 07:28:00 GMT"``).

    A date in the past gives 0. Missing, negative, infinite or unreadable values give
    None. ``now`` (default: the current UTC time) is what a date is measured from; a
    naive ``now`` or date is taken as UTC.
    """
    if value is None:
        return None
    seconds = _seconds(value)
    if seconds is not None or not isinstance(value, str):
        return seconds
    try:
        when = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:  # older Pythons returned None on garbage
        return None
    if now is None:
        now = datetime.now(UTC)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def parse_retry_after_ms(value: str | float | int | None) -> float | None:
    """Seconds from a ``retry-after-ms`` value (milliseconds); None if missing or garbage."""
    milliseconds = _seconds(value)
    return None if milliseconds is None else milliseconds / 1000.0


def retry_after_from_headers(
    headers: Mapping[str, str] | None, *, now: datetime | None = None
) -> float | None:
    """Seconds to wait from response headers: ``retry-after-ms`` if readable, else
    ``retry-after``; each also under LiteLLM's ``llm_provider-`` prefix. Header names
    match case-insensitively; None when none of them helps."""
    if not headers:
        return None
    lowered = {str(name).lower(): value for name, value in headers.items()}
    for prefix in ("", "llm_provider-"):
        from_ms = parse_retry_after_ms(lowered.get(f"{prefix}retry-after-ms"))
        if from_ms is not None:
            return from_ms
    for prefix in ("", "llm_provider-"):
        seconds = parse_retry_after(lowered.get(f"{prefix}retry-after"), now=now)
        if seconds is not None:
            return seconds
    return None
