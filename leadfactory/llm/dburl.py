"""Database URLs (``LLM_LEDGER_URL``): checked without showing them, printed without passwords.

A URL may carry a password twice: after the user name (``postgresql://u:pw@host/db``)
and as a ``password=`` query parameter (libpq accepts both). :func:`public_url` hides
both, :func:`url_secrets` lists them for redaction, and :func:`check_postgres_url`'s
errors never quote the URL. Nothing here imports a database driver.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

__all__ = [
    "POSTGRES_SCHEMES",
    "check_postgres_setting",
    "check_postgres_url",
    "is_postgres_url",
    "public_url",
    "url_secrets",
]

POSTGRES_SCHEMES = ("postgresql", "postgres")
_EXAMPLE = "like postgresql://user@db.example.com:5432/leadfactory"
_HIDDEN = "***"


def is_postgres_url(value: str) -> bool:
    """Whether ``value`` names a PostgreSQL database rather than a file."""
    return value.strip().split("://", 1)[0].lower() in POSTGRES_SCHEMES and "://" in value


def check_postgres_url(value: str) -> str:
    """``value`` stripped; ValueError (never quoting it) unless it is a usable PostgreSQL URL."""
    value = value.strip()
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - reading it checks the port
        query = dict(parse_qsl(parts.query, keep_blank_values=True, strict_parsing=False))
    except ValueError:
        raise ValueError(f"is not a URL (the port must be a number); give one {_EXAMPLE}") from None
    if parts.scheme.lower() not in POSTGRES_SCHEMES:
        raise ValueError(f"must start with postgresql://; give a URL {_EXAMPLE}")
    if not (parts.hostname or query.get("host")) or any(c.isspace() for c in value):
        raise ValueError(f"needs a host name and no spaces; give a URL {_EXAMPLE}")
    return value


def check_postgres_setting(value: Any) -> str | None:
    """A setting's value (str, SecretStr or None): None when blank, else checked."""
    if hasattr(value, "get_secret_value"):
        value = value.get_secret_value()
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise ValueError(f"must be a postgresql:// URL, {_EXAMPLE}")
    return check_postgres_url(value)


def public_url(url: str) -> str:
    """``url`` with any password replaced by ``***``: safe to print and log."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if parts.password is not None:
            userinfo, _, hostinfo = netloc.rpartition("@")
            netloc = f"{userinfo.split(':', 1)[0]}:{_HIDDEN}@{hostinfo}"
        query = [
            (name, _HIDDEN if name.lower() == "password" else value)
            for name, value in parse_qsl(parts.query, keep_blank_values=True)
        ]
        return urlunsplit(parts._replace(netloc=netloc, query=urlencode(query, safe="*")))
    except ValueError:
        return "(a malformed URL)"


def url_secrets(url: str) -> list[str]:
    """The passwords ``url`` holds (raw and decoded), for redacting messages."""
    found: list[str] = []
    try:
        parts = urlsplit(url)
        if parts.password:
            found.append(parts.password)
        found += [v for k, v in parse_qsl(parts.query) if k.lower() == "password" and v]
    except ValueError:
        return found
    return [s for secret in found for s in {secret, unquote(secret)} if s]
