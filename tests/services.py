"""The PostgreSQL and Redis servers the multi-host backend tests use.

Their URLs come from ``LF_TEST_POSTGRES_URL`` and ``LF_TEST_REDIS_URL`` (defaults: the
servers every development and CI machine of this project runs on 127.0.0.1). Where a
server does not answer, its tests skip with a message saying what to start; with
``LF_REQUIRE_SERVICES=1`` (set by ``.ci/run``) that skip is a failure instead, so CI
always runs them.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote, urlsplit

import pytest

POSTGRES_URL = os.environ.get("LF_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("LF_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

_HOW_TO_START = {
    "PostgreSQL": "start PostgreSQL 15 on 127.0.0.1:5432 (trust authentication, database "
    "`test`) or point LF_TEST_POSTGRES_URL at one",
    "Redis": "start Redis 7 on 127.0.0.1:6379 or point LF_TEST_REDIS_URL at one",
}


def services_required() -> bool:
    """Whether a missing server fails the tests instead of skipping them (CI)."""
    return os.environ.get("LF_REQUIRE_SERVICES", "").strip().lower() in {"1", "true", "yes"}


def answers(url: str, default_port: int, timeout: float = 1.0) -> bool:
    """Whether something accepts TCP connections at ``url``'s host and port."""
    parts = urlsplit(url)
    try:
        with socket.create_connection(
            (parts.hostname or "127.0.0.1", parts.port or default_port), timeout=timeout
        ):
            return True
    except OSError:
        return False


def require(name: str, url: str, default_port: int) -> str:
    """``url`` if its server answers; else skip (or fail under LF_REQUIRE_SERVICES)."""
    if answers(url, default_port):
        return url
    message = f"{name} is not reachable at {_public(url)}: {_HOW_TO_START[name]}"
    if services_required():
        pytest.fail(f"{message} (LF_REQUIRE_SERVICES is set: CI must run these tests)")
    pytest.skip(message)


def require_postgres() -> str:
    """The test PostgreSQL URL, or skip/fail with what to start."""
    return require("PostgreSQL", POSTGRES_URL, 5432)


@contextmanager
def postgres_schema() -> Iterator[str]:
    """A URL whose ``search_path`` is a new empty schema, dropped afterwards (or skip)."""
    import psycopg

    url = require_postgres()
    name = f"lf_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {name}")
    separator = "&" if "?" in url else "?"
    try:
        yield f"{url}{separator}options={quote(f'-csearch_path={name}')}"
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {name} CASCADE")


def require_redis() -> str:
    """The test Redis URL, or skip/fail with what to start."""
    return require("Redis", REDIS_URL, 6379)


def _public(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}:{parts.port or ''}{parts.path}"


def redis_keys_gone(url: str, prefix: str) -> None:
    """Delete every key under ``prefix`` (a test's own) on the Redis at ``url``."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        names = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if names:
            client.delete(*names)
    finally:
        client.close()
