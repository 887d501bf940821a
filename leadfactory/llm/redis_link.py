"""One process's connection to a Redis server, and what to do while it is away.

Everything Redis holds for this library (rate-limit windows, pauses, cooldowns, cached
answers) goes through a :class:`RedisLink`. It imports redis-py on first use only, so
the core install never needs it. When the server stops answering, the link logs one
warning, reports :attr:`RedisLink.answering` False, and for :data:`RETRY_AFTER` seconds
refuses at once (:class:`RedisUnavailable`) instead of making every call wait for a
connection; then it tries again, and says so once when the server is back. Callers keep
their own in-process state for that time.

The URL's password never leaves this module: :func:`public_url` is what messages,
reprs and ``status`` show.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

from .log import log_event
from .redact import split_public

__all__ = ["RETRY_AFTER", "RedisLink", "RedisUnavailable", "check_redis_url", "public_url"]

T = TypeVar("T")

RETRY_AFTER = 1.0  # seconds between attempts to reach a server that stopped answering
CONNECT_TIMEOUT = 0.5  # seconds: on loopback or a LAN an answer takes well under 1 ms
COMMAND_TIMEOUT = 1.0

_SCHEMES = ("redis", "rediss")
_EXAMPLE = "like redis://localhost:6379/0 or rediss://:password@host:6380/1"


class RedisUnavailable(ConnectionError):
    """Redis did not answer just now; this process uses its own state meanwhile.

    ``reported`` tells a caller that the link has already logged the outage.
    """

    reported = True


def check_redis_url(value: Any) -> Any:
    """``value`` stripped if it is a usable ``redis://`` URL (None when blank); else
    ValueError that never repeats the value (it may hold a password)."""
    if value is None:
        return None
    if hasattr(value, "get_secret_value"):
        value = value.get_secret_value()
    if not isinstance(value, str):
        raise ValueError(f"must be a redis:// URL, {_EXAMPLE}")
    value = value.strip()
    if not value:
        return None
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - reading it checks the port
    except ValueError:
        raise ValueError(f"is not a URL (bad port or brackets); give one {_EXAMPLE}") from None
    if parts.scheme not in _SCHEMES:
        raise ValueError(f"must start with redis:// or rediss://; give a URL {_EXAMPLE}")
    if not parts.hostname or any(c.isspace() for c in value):
        raise ValueError(f"needs a host name and no spaces; give a URL {_EXAMPLE}")
    database = parts.path.strip("/")
    if database and not database.isdigit():
        raise ValueError(f"the path must be a database number (/0, /1, ...); {_EXAMPLE}")
    return value


def public_url(url: str) -> str:
    """``url`` without user name, password or query: safe to print."""
    parts, netloc = split_public(url)
    return f"{parts.scheme}://{netloc}{parts.path or '/0'}"


class RedisLink:
    """A redis-py client made on first use (again in a forked child), with outage
    bookkeeping. ``prefix`` starts every key this library writes."""

    def __init__(self, url: str, prefix: str = "leadfactory-llm:") -> None:
        self._url = check_redis_url(url)
        if self._url is None:
            raise ValueError("RedisLink needs a redis:// URL")
        self.public = public_url(self._url)
        self.prefix = prefix
        self._lock = threading.Lock()
        self._client: Any = None
        self._pid = 0
        self._down_since: float | None = None
        self._retry_at = 0.0
        self._errors: tuple[type[BaseException], ...] | None = None

    def __repr__(self) -> str:
        return f"RedisLink({self.public!r}, prefix={self.prefix!r})"

    @property
    def errors(self) -> tuple[type[BaseException], ...]:
        """What a command raises when the server is away (or refuses us)."""
        if self._errors is None:
            import redis

            self._errors = (redis.exceptions.RedisError, OSError, RedisUnavailable)
        return self._errors

    @property
    def answering(self) -> bool:
        """False from a failed command until a later one succeeds."""
        return self._down_since is None

    def client(self) -> Any:
        """The redis-py client, or RedisUnavailable while a recent outage lasts."""
        if self._down_since is not None and time.monotonic() < self._retry_at:
            raise RedisUnavailable(f"Redis at {self.public} is not answering")
        pid = os.getpid()
        if self._client is None or self._pid != pid:
            with self._lock:
                if self._client is None or self._pid != pid:
                    import redis

                    self._client = redis.Redis.from_url(
                        self._url,
                        socket_connect_timeout=CONNECT_TIMEOUT,
                        socket_timeout=COMMAND_TIMEOUT,
                        health_check_interval=0,
                    )
                    self._pid = pid
        return self._client

    def script(self, source: str) -> Any:
        """A Lua script registered on this link's client (EVALSHA, loaded on first use)."""
        return _Script(self, source)

    def failed(self, error: BaseException) -> None:
        """Note that a command failed with ``error``; warn once per outage."""
        with self._lock:
            first = self._down_since is None
            if first:
                self._down_since = time.monotonic()
            self._retry_at = time.monotonic() + RETRY_AFTER
        if first and not isinstance(error, RedisUnavailable):
            log_event(
                logging.WARNING,
                f"Redis at {self.public} is not answering ({type(error).__name__}); rate "
                "limits, cooldowns and the cache use this process's own state until it "
                "answers again",
            )

    def succeeded(self) -> None:
        """Note a successful command; say once that the server is back."""
        if self._down_since is None:
            return
        with self._lock:
            was_down, self._down_since = self._down_since is not None, None
        if was_down:
            log_event(logging.INFO, f"Redis at {self.public} answers again; shared state resumes")

    def run(self, action: Callable[[Any], T]) -> T:
        """``action(client)``; a failure is noted and raised as :class:`RedisUnavailable`."""
        try:
            result = action(self.client())
        except RedisUnavailable:
            raise
        except self.errors as error:
            self.failed(error)
            raise RedisUnavailable(
                f"Redis at {self.public} is not answering ({type(error).__name__})"
            ) from error
        self.succeeded()
        return result

    def run_scripts(self, calls: list[tuple[Any, list[str], list[Any]]]) -> list[Any]:
        """Each ``(script, keys, args)`` of ``calls`` (scripts from :meth:`script`) in one
        round trip, in order (a pipeline, not a transaction); their results, as :meth:`run`."""
        return self.run(lambda client: _exchange(client, calls))

    def ping(self) -> bool:
        """Whether the server answers now (a real round trip, for ``status``)."""
        try:
            self.client().ping()
        except self.errors as error:
            self.failed(error)
            return False
        self.succeeded()
        return True

    def close(self) -> None:
        """Close the connections; the next command opens new ones."""
        client, self._client = self._client, None
        if client is not None and self._pid == os.getpid():
            client.close()


class _Script:
    """A Lua script made on first use on the link's current client (after a fork, a
    new one)."""

    def __init__(self, link: RedisLink, source: str) -> None:
        self._link = link
        self._source = source
        self._script: Any = None
        self._client: Any = None

    def __call__(self, keys: list[str], args: list[Any]) -> Any:
        client = self._link.client()
        self.sha(client)
        return self._script(keys=keys, args=args)

    def sha(self, client: Any) -> str:
        """The script's SHA1 on ``client`` (registered there first; loaded on NOSCRIPT)."""
        if self._script is None or self._client is not client:
            self._script, self._client = client.register_script(self._source), client
        return self._script.sha


def _exchange(client: Any, calls: list[tuple[_Script, list[str], list[Any]]]) -> list[Any]:
    """The EVALSHAs of ``calls`` written at once on one of ``client``'s pooled
    connections and their replies read in order: what a redis-py pipeline does, without
    its per-command objects and response callbacks (none applies to EVALSHA), with the
    pool's checks and the connection's retry policy as redis-py's own commands have
    them. A script the server does not have is loaded and run alone."""
    from redis.exceptions import NoScriptError, ResponseError

    commands = [
        ("EVALSHA", script.sha(client), len(keys), *keys, *args) for script, keys, args in calls
    ]
    pool = client.connection_pool
    conn = pool.get_connection()

    def exchange() -> list[Any]:
        conn.send_packed_command([_packed(conn.encoder, commands)], check_health=False)
        replies: list[Any] = []
        for _ in commands:
            try:
                replies.append(conn.read_response())
            except ResponseError as error:  # a reply, read whole: the next one follows
                replies.append(error)
        return replies

    try:
        results = conn.retry.call_with_retry(exchange, lambda _: conn.disconnect())
    finally:
        pool.release(conn)
    for index, (script, keys, args) in enumerate(calls):
        if isinstance(results[index], NoScriptError):  # not run: load it, run it alone
            results[index] = script(keys, args)
        elif isinstance(results[index], Exception):
            raise results[index]
    return results


def _packed(encoder: Any, commands: list[tuple[Any, ...]]) -> bytes:
    """``commands`` in the Redis protocol, arguments encoded as redis-py's ``encoder``
    encodes them (str, int and float here, any other type by the encoder itself, which
    refuses what redis-py refuses): redis-py's packers run its encoder in Python per
    argument, most of a gate round trip's client CPU."""
    encoding, errors = encoder.encoding, encoder.encoding_errors
    out: list[bytes] = []
    for command in commands:
        out.append(b"*%d\r\n" % len(command))
        for part in command:
            kind = type(part)
            if kind is str:
                data = part.encode(encoding, errors)
            elif kind is int or kind is float:
                data = repr(part).encode()
            else:
                data = bytes(encoder.encode(part))
            out.append(b"$%d\r\n%b\r\n" % (len(data), data))
    return b"".join(out)


_LINKS: dict[tuple[str, str], RedisLink] = {}
_LINKS_LOCK = threading.Lock()


def shared_link(url: str, prefix: str) -> RedisLink:
    """One link per URL and prefix in this process, so an outage is noticed (and
    reported) once, whatever uses the server."""
    with _LINKS_LOCK:
        link = _LINKS.get((url, prefix))
        if link is None:
            link = _LINKS[(url, prefix)] = RedisLink(url, prefix)
        return link
