"""The cache key: a canonical SHA-256 of what determines a request's answer."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from decimal import Decimal
from numbers import Integral, Real
from typing import Any

__all__ = ["CACHE_KEY_VERSION", "cache_key"]

CACHE_KEY_VERSION = 1
"""Part of every hashed payload: raising it makes every stored entry unreachable."""

_KEY_PREFIX = f"leadfactory-llm/cache-key/v{CACHE_KEY_VERSION}\n"
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def cache_key(request: Mapping[str, Any]) -> str:
    """Return the sha256 hex digest that identifies ``request``'s answer.

    ``request`` holds exactly what determines the answer: ``messages``, the ``model`` or
    provider pin, ``temperature``, ``max_tokens`` and the other generation parameters
    (``top_p``, ``stop``, ``seed``, ``response_format``, ``tools``...). The caller must
    leave out everything else: API keys, base URLs, timeouts, retry and logging options.

    The hash is canonical: dict key order does not matter, keys whose value is None are
    dropped (at every level), tuples hash as lists, and numbers are compared as floats,
    so ``0.7``, ``0.70`` and ``7e-1`` hash alike and so do ``1`` and ``1.0`` (integers too
    large for a float stay exact). Booleans stay booleans. A pydantic model instance
    hashes as its ``model_dump(mode="json")``, a model class as its JSON schema.
    Anything else that JSON cannot express raises TypeError.
    """
    if not isinstance(request, Mapping):
        raise TypeError(f"cache_key needs a mapping, not {type(request).__name__}")
    payload = _ENCODER.encode(_canonical(request))
    data = (_KEY_PREFIX + payload).encode("utf-8", "surrogatepass")
    return hashlib.sha256(data).hexdigest()


def _canonical(value: Any) -> Any:
    kind = type(value)  # the plain types first: a request is mostly made of them
    if kind is str or kind is bool or value is None:
        return value
    if kind is dict:
        return _canonical_mapping(value)
    if kind is list:
        return [_canonical(item) for item in value]
    if kind is float:
        return value if value != 0 else 0.0  # -0.0 hashes as 0.0
    if kind is int:
        return _canonical_int(value)
    return _canonical_other(value)


def _canonical_mapping(value: Mapping[Any, Any]) -> dict[str, Any]:
    canonical = {}
    for key, item in value.items():
        if not isinstance(key, str):
            raise TypeError(f"cache_key: mapping keys must be strings, not {key!r}")
        if item is not None:
            canonical[key] = _canonical(item)
    return canonical


def _canonical_other(value: Any) -> Any:
    """Subclasses of the plain types, numbers of other kinds, tuples, pydantic models."""
    if isinstance(value, bool | str):
        return value
    if isinstance(value, float):
        return _canonical(float(value))
    if isinstance(value, Integral):
        return _canonical_int(int(value))
    if isinstance(value, Decimal | Real):
        return _canonical(float(value))
    if isinstance(value, Mapping):
        return _canonical_mapping(value)
    if isinstance(value, list | tuple):
        return [_canonical(item) for item in value]
    if isinstance(value, type) and callable(getattr(value, "model_json_schema", None)):
        return {"pydantic_model": value.__name__, "schema": _canonical(value.model_json_schema())}
    if callable(getattr(value, "model_dump", None)):
        return _canonical(value.model_dump(mode="json"))
    raise TypeError(f"cache_key cannot hash a {type(value).__name__}: {value!r:.80}")


def _canonical_int(value: int) -> int | float:
    try:
        as_float = float(value)
    except OverflowError:
        return value
    return as_float if int(as_float) == value else value
