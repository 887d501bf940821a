"""A batch's input: each request checked, given an id, and turned into call arguments.

A request is a messages list, or a dict of :meth:`LLMClient.achat_completion`'s
arguments with an optional ``id`` (and ``prompt`` as a shorthand for one user message).
An item's id is the caller's ``id``, else the request's cache key, so the same request
is the same item in every run. A request that cannot be called ends as a failed item
holding the :class:`LLMValidationError`, costing nothing; the others go on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..cached_calls import CachedCalls
from ..exceptions import LLMError, LLMValidationError

__all__ = ["Item", "prepare_items"]

# chat_completion's named arguments; the rest of a dict goes to **kwargs
_NAMED = ("model", "temperature", "max_tokens")


@dataclass(frozen=True)
class Item:
    """One request of a batch, at ``index`` in the input."""

    index: int
    id: str | None  # None only when the request was too malformed to have one
    arguments: dict[str, Any]  # for achat_completion(**arguments)
    error: LLMError | None = None  # set: the item fails without a call


def prepare_items(client: Any, requests: Iterable[Any]) -> list[Item]:
    """Every request as an :class:`Item`, in input order (see the module docstring)."""
    items: list[Item] = []
    seen: dict[str, int] = {}
    for index, request in enumerate(requests):
        try:
            arguments, explicit = _arguments(index, request)
            item_id = explicit if explicit is not None else _key(client, arguments)
        except LLMError as error:
            items.append(Item(index, None, {}, error))
            continue
        if explicit is not None and item_id in seen:
            error = LLMValidationError(
                f"item {index}: id {item_id!r} is also the id of item {seen[item_id]}:"
                " give every request its own id (or none, to use the request's cache key)",
                metadata={"field": "id", "index": index},
            )
            items.append(Item(index, item_id, {}, error))
            continue
        seen.setdefault(item_id, index)
        items.append(Item(index, item_id, arguments))
    return items


def _arguments(index: int, request: Any) -> tuple[dict[str, Any], str | None]:
    """achat_completion's arguments for ``request``, and the caller's id (or None)."""
    if isinstance(request, list | tuple):
        return {"messages": list(request)}, None
    if not isinstance(request, Mapping):
        raise LLMValidationError(
            f"item {index}: expected a messages list or a dict of chat_completion arguments,"
            f" got {type(request).__name__}",
            metadata={"index": index},
        )
    arguments = dict(request)
    explicit = arguments.pop("id", None)
    if explicit is not None and (isinstance(explicit, bool) or not isinstance(explicit, str | int)):
        raise LLMValidationError(
            f"item {index}: id must be a string or an integer, got {type(explicit).__name__}",
            metadata={"field": "id", "index": index},
        )
    if "prompt" in arguments:
        prompt = arguments.pop("prompt")
        if "messages" in arguments or not isinstance(prompt, str):
            what = "not both" if "messages" in arguments else f"not {type(prompt).__name__}"
            raise LLMValidationError(
                f"item {index}: give either messages (a list) or prompt (a string), {what}",
                metadata={"field": "prompt", "index": index},
            )
        arguments["messages"] = [{"role": "user", "content": prompt}]
    if "messages" not in arguments:
        raise LLMValidationError(
            f"item {index}: no messages: give messages (a list of role/content dicts) or"
            " prompt (a string)",
            metadata={"field": "messages", "index": index},
        )
    return arguments, None if explicit is None else str(explicit)


def _key(client: Any, arguments: dict[str, Any]) -> str:
    """The request's cache key (the request is checked on the way, as a call would)."""
    extra = {
        k: v for k, v in arguments.items() if k not in (*_NAMED, "messages", "cache", "caller")
    }
    named = [arguments.get(name) for name in _NAMED]
    request = client._request(arguments["messages"], *named, None, extra)
    try:
        return CachedCalls.key(request)
    except TypeError as error:  # a parameter JSON cannot express
        raise LLMValidationError(
            f"{error}: give the request an id", metadata={"field": "id"}
        ) from None
