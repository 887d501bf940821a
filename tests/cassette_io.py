"""How cassettes are written and read: the one vcr configuration and what a cassette holds.

Recording moves every request to the vendor's real host and drops or replaces every
credential; replay matches requests on everything but headers, each interaction played
once. The readers here find the generation requests a cassette holds and scan every
string in it for a key. Shared by tests/record_cassettes.py and the cassette tests.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import vcr

from .cassette_scenarios import REAL_BASE_URLS

KEY_PLACEHOLDER = "<API_KEY>"


FILTER_HEADERS = (
    "authorization",
    "x-api-key",
    "api-key",
    "cookie",
    "openai-organization",
    "openai-project",
)
FILTER_QUERY_PARAMETERS = ("key", "api_key", "api-key")
DROP_RESPONSE_HEADERS = frozenset(
    {"set-cookie", "openai-organization", "openai-project", "anthropic-organization-id"}
)
MATCH_ON = ("method", "scheme", "host", "port", "path", "query", "body")
GENERATION_PATHS = {
    "openai": "/v1/chat/completions",
    "anthropic": "/v1/messages",
    "ollama": "/v1/chat/completions",
}
"""The request that asks each provider for an answer (Ollama through its OpenAI-compatible
API, the route the client uses); no other request may appear in a cassette."""


def provider_of(uri: str) -> str | None:
    """The provider whose real base URL ``uri`` is on."""
    for name, base in REAL_BASE_URLS.items():
        if uri.startswith(base + "/"):
            return name
    return None


def generation_requests(requests: Iterable[Any]) -> list[tuple[str | None, Any]]:
    """(provider, request) of the recorded requests that ask for an answer, in order."""
    out = []
    for request in requests:
        provider = provider_of(request.uri)
        if provider is not None and request.path.endswith(GENERATION_PATHS[provider]):
            out.append((provider, request))
    return out


# -- vcr -----------------------------------------------------------------------------


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc


def rewrite_hosts(mapping: Mapping[str, str]):
    """A before_record_request hook moving requests from each recorded base URL (a
    simulator port) to the vendor's real base URL (URI and Host header; path and query
    kept)."""
    origins = {_origin(src): _origin(dst) for src, dst in mapping.items() if src != dst}

    def rewrite(request):
        parts = urlsplit(request.uri)
        target = origins.get((parts.scheme, parts.netloc))
        if target is not None:
            request.uri = urlunsplit((*target, parts.path, parts.query, parts.fragment))
            if "host" in request.headers:
                request.headers["host"] = target[1]
        return request

    return rewrite


def _drop_response_headers(response: dict) -> dict:
    headers = response.get("headers") or {}
    response["headers"] = {
        k: v for k, v in headers.items() if str(k).lower() not in DROP_RESPONSE_HEADERS
    }
    return response


def cassette_vcr(
    *, rewrite: Mapping[str, str] | None = None, secrets: Iterable[str | None] = ()
) -> vcr.VCR:
    """The one vcr configuration, for recording (``rewrite`` and ``secrets`` given) and replay.

    Requests match on method, scheme, host, port, path, query and body (as data when the
    request says it is JSON; LiteLLM's Ollama requests don't, so byte for byte), never on
    headers. Each recorded interaction plays once, in order.
    """
    sensitive = [(KEY_PLACEHOLDER, s) for s in dict.fromkeys(secrets) if s]
    return vcr.VCR(
        serializer="yaml",
        record_mode="none",
        match_on=MATCH_ON,
        filter_headers=FILTER_HEADERS,
        filter_query_parameters=FILTER_QUERY_PARAMETERS,
        before_record_request=rewrite_hosts(rewrite or {}),
        before_record_response=_drop_response_headers,
        decode_compressed_response=True,
        filter_sensitive_data=sensitive,
    )


def cassette_texts(path: Path) -> Iterator[str]:
    """Every string in a cassette as the tests and the secret scan see it: the file itself,
    then each request's URI, headers and body and each response's headers and body
    (decoded, so nothing hides in a !!binary block)."""
    from vcr.serialize import deserialize
    from vcr.serializers import yamlserializer

    text = path.read_text(encoding="utf-8")
    yield text
    requests, responses, *_ = deserialize(text, yamlserializer)
    for request, response in zip(requests, responses, strict=True):
        yield request.uri
        yield repr(dict(request.headers))
        body = request.body
        yield body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
        yield repr(response.get("headers"))
        content = (response.get("body") or {}).get("string", b"")
        yield content.decode("utf-8", "replace") if isinstance(content, bytes) else str(content)


def find_secrets(paths: Iterable[Path], secrets: Iterable[str]) -> list[str]:
    """``path: secret-prefix`` for each cassette holding one of ``secrets``."""
    found = []
    for path in paths:
        for secret in secrets:
            if secret and any(secret in text for text in cassette_texts(path)):
                found.append(f"{path}: {secret[:6]}...")
    return found
