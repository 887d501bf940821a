"""Keeping keys out of what a user can print: messages, and whole exception chains.

:func:`redact` replaces secret values in a text, and the password of any URL in it
(``https://user:password@host`` becomes ``https://user:[redacted]@host``).
:func:`redact_chain` does it, in place, for every exception in a cause/context chain
(the LiteLLM, vendor SDK and httpx exceptions an
:class:`~leadfactory.llm.exceptions.LLMError` keeps as ``__cause__``): their ``args``,
string attributes (``message``, ``body``...), and the URL, headers and body of the HTTP
request and response they hold. Types and status codes stay as they were, so the chain
still says what happened; only the secret texts go.

Nothing here imports LiteLLM or httpx; HTTP objects are recognised by their attributes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import SplitResult, urlsplit

__all__ = ["REDACTED", "exception_chain", "redact", "redact_chain"]

REDACTED = "[redacted]"
_MIN_SECRET = 4  # shorter values would redact ordinary text
_MAX_DEPTH = 6  # nesting of bodies and attributes searched
_URL_PASSWORD = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s:/@]*:)[^\s/@]+@")


def split_public(url: str) -> tuple[SplitResult, str]:
    """``url`` split, and its ``host[:port]`` without user name or password."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # IPv6
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    return parts, host if port is None else f"{host}:{port}"


def _usable(secrets: Iterable[str | None]) -> tuple[str, ...]:
    return tuple(s for s in secrets if isinstance(s, str) and len(s) >= _MIN_SECRET)


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every secret value, and every URL's password, replaced."""
    for secret in _usable(secrets):
        text = text.replace(secret, REDACTED)
    if "://" in text:
        text = _URL_PASSWORD.sub(rf"\g<head>{REDACTED}@", text)
    return text


def exception_chain(error: BaseException) -> Iterator[BaseException]:
    """``error``, then its ``__cause__`` (or ``__context__``), and so on, each once."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def redact_chain(error: BaseException, secrets: Iterable[str | None]) -> None:
    """Replace the secrets in every exception of ``error``'s chain, in place.

    Both ``__cause__`` and ``__context__`` links are followed (a traceback prints both).
    URL passwords are replaced even when ``secrets`` is empty.
    """
    usable = _usable(secrets)
    pending, seen = [error], set()
    while pending:
        link = pending.pop()
        if id(link) in seen:
            continue
        seen.add(id(link))
        link.args = _scrubbed(link.args, usable, 0)
        state = vars(link)
        for name, value in list(state.items()):
            state[name] = _scrubbed(value, usable, 0)
        pending.extend(e for e in (link.__cause__, link.__context__) if e is not None)


def _scrubbed(value: Any, secrets: tuple[str, ...], depth: int) -> Any:
    """``value`` without the secrets: texts replaced, containers rebuilt, HTTP objects
    (requests, responses, headers) scrubbed in place."""
    if depth > _MAX_DEPTH or value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        return redact(value, secrets)
    if isinstance(value, bytes):
        for secret in secrets:
            value = value.replace(secret.encode(), REDACTED.encode())
        return value
    if type(value) is dict:  # exact types only: a subclass may not rebuild from items
        return {k: _scrubbed(v, secrets, depth + 1) for k, v in value.items()}
    if type(value) in (list, tuple):
        return type(value)(_scrubbed(item, secrets, depth + 1) for item in value)
    if isinstance(value, BaseException):
        return value  # its own link of the chain, or a nested one: left to the walk
    _scrub_http(value, secrets, depth)
    return value


def _scrub_http(value: Any, secrets: tuple[str, ...], depth: int) -> None:
    """An httpx-like request, response or headers object, scrubbed in place."""
    headers = value if hasattr(value, "multi_items") else getattr(value, "headers", None)
    if hasattr(headers, "multi_items") and hasattr(headers, "__setitem__"):
        leaked = [(k, v) for k, v in headers.multi_items() if redact(v, secrets) != v]
        for key, item in leaked:
            headers[key] = redact(item, secrets)
    state = getattr(value, "__dict__", None)
    if not isinstance(state, dict) or headers is None:
        return  # not an HTTP message
    url = state.get("url")  # a request's URL object, which may hold a password
    if url is not None and not isinstance(url, str) and redact(str(url), secrets) != str(url):
        state["url"] = type(url)(redact(str(url), secrets))
    for name in ("_content", "_text", "_json"):  # a response's body, read and cached
        if name in state:
            state[name] = _scrubbed(state[name], secrets, depth + 1)
    request = state.get("_request")
    if request is not None and request is not value:
        _scrub_http(request, secrets, depth + 1)
