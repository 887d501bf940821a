"""What a stream has delivered, chunk by chunk: the text, the tool-call deltas, the end.

No I/O: :func:`read_chunk` turns LiteLLM's chunk into an OpenAI-shaped dict
(``chat.completion.chunk``), :func:`finish_received` and :func:`reported_usage` read what
the provider itself sent; :class:`Assembly` builds back the ``chat.completion`` the
chunks make, and :func:`replay_chunks` does the reverse for an answer from the cache.
"Content" is text or a tool-call delta: a chunk with only a role, or an empty string,
is not.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from .providers import usage_dict

__all__ = [
    "Assembly",
    "finish_received",
    "has_content",
    "read_chunk",
    "replay_chunks",
    "reported_usage",
]


def has_content(chunk: dict[str, Any]) -> bool:
    """Whether ``chunk`` carries text or a tool-call delta."""
    for choice in chunk["choices"]:
        delta = choice["delta"]
        if delta.get("content") or delta.get("tool_calls"):
            return True
    return False


class Assembly:
    """The chunks of one stream, merged (the first choice; streams here ask for one)."""

    def __init__(self) -> None:
        self.head: dict[str, Any] | None = None  # the first chunk: id, created, model
        self.parts: list[str] = []
        self.calls: dict[int, dict[str, Any]] = {}
        self.role = "assistant"
        self.finish_reason: str | None = None
        self.chunks = 0
        self.content = False  # some content has arrived

    def add(self, chunk: dict[str, Any]) -> bool:
        """Take ``chunk`` in; returns whether it carried content."""
        if self.head is None:
            self.head = chunk
        self.chunks += 1
        found = False
        for choice in chunk["choices"]:
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
            delta = choice["delta"]
            if delta.get("role"):
                self.role = delta["role"]
            if delta.get("content"):
                self.parts.append(delta["content"])
                found = True
            for call in delta.get("tool_calls") or ():
                self._merge(call)
                found = True
        self.content = self.content or found
        return found

    def _merge(self, delta: dict[str, Any]) -> None:
        call = self.calls.setdefault(
            delta.get("index", 0),
            {"id": None, "type": "function", "function": {"name": "", "arguments": ""}},
        )
        if delta.get("id"):
            call["id"] = delta["id"]
        function = delta.get("function") or {}
        call["function"]["name"] += function.get("name") or ""
        call["function"]["arguments"] += function.get("arguments") or ""

    @property
    def text(self) -> str:
        """The text delivered so far, exactly."""
        return "".join(self.parts)

    @property
    def tool_calls(self) -> list[dict[str, Any]]:
        """The tool calls received so far, each merged from its deltas."""
        return [copy.deepcopy(self.calls[index]) for index in sorted(self.calls)]

    def response(self, usage: dict[str, Any] | None) -> dict[str, Any]:
        """The ``chat.completion`` these chunks make, with ``usage`` (None: not reported)."""
        head = self.head or {}
        message: dict[str, Any] = {"role": self.role, "content": self.text or None}
        if self.calls:
            message["tool_calls"] = self.tool_calls
        answer = {
            "id": head.get("id"),
            "object": "chat.completion",
            "created": head.get("created"),
            "model": head.get("model"),
            "choices": [{"index": 0, "message": message, "finish_reason": self.finish_reason}],
        }
        if usage is not None:
            answer["usage"] = usage
        return answer


def replay_chunks(response: dict[str, Any], include_usage: bool = False) -> list[dict[str, Any]]:
    """A whole ``chat.completion`` (a cached answer) as the chunks of a stream."""
    base = {
        "id": response.get("id"),
        "object": "chat.completion.chunk",
        "created": response.get("created"),
        "model": response.get("model"),
    }
    chunks = []
    for choice in response.get("choices") or ():
        message, index = choice.get("message") or {}, choice.get("index", 0)
        delta: dict[str, Any] = {"role": message.get("role") or "assistant"}
        if message.get("content"):
            delta["content"] = message["content"]
        if message.get("tool_calls"):
            delta["tool_calls"] = [
                {**call, "index": n} for n, call in enumerate(message["tool_calls"])
            ]
        chunks.append(
            {**base, "choices": [{"index": index, "delta": delta, "finish_reason": None}]}
        )
        end = {"index": index, "delta": {}, "finish_reason": choice.get("finish_reason")}
        chunks.append({**base, "choices": [end]})
    if include_usage:
        chunks.append({**base, "choices": [], "usage": response.get("usage")})
    return chunks


# -- LiteLLM's stream, read (its objects; nothing here calls LiteLLM) ------------------


def read_chunk(chunk: Any, route: str = "") -> tuple[dict[str, Any], Any]:
    """LiteLLM's stream chunk as a plain OpenAI ``chat.completion.chunk`` dict, and the
    usage it carries (None: none; the dict never has ``usage``)."""
    fields = _fields(chunk)
    choices = []
    for choice in fields.get("choices") or ():
        choice = _fields(choice)
        delta, out = _fields(choice.get("delta")), {}
        if role := delta.get("role"):
            out["role"] = role
        if (content := delta.get("content")) is not None:
            out["content"] = content
        if calls := delta.get("tool_calls"):
            out["tool_calls"] = [_tool_call_delta(call) for call in calls]
        finish = choice.get("finish_reason")
        choices.append({"index": choice.get("index", 0), "delta": out, "finish_reason": finish})
    head, _, name = route.partition("/")
    model = str(fields.get("model") or name)
    prefix = head + "/"
    out_chunk = {
        "id": fields.get("id"),
        "object": "chat.completion.chunk",
        "created": int(fields.get("created") or 0),
        "model": model[len(prefix) :] if model.startswith(prefix) else model,
        "choices": choices,
    }
    return out_chunk, fields.get("usage")


def _fields(item: Any) -> Mapping[str, Any]:
    """The attributes of one of LiteLLM's stream objects, as a mapping to read with ``get``.

    LiteLLM's chunk, choice and delta are pydantic models that keep most of their fields
    as extras (``model_extra``): read as attributes, each goes through pydantic's
    ``__getattr__`` (a Python call; a missing one, as ``usage`` mostly is, raises and
    catches AttributeError), some 8 per chunk, a third of the time this module spends
    on it. Their fields and extras are read here as the two dicts pydantic keeps.
    """
    if isinstance(item, BaseModel):
        extra = item.__pydantic_extra__
        return {**item.__dict__, **extra} if extra else item.__dict__
    if item is None or isinstance(item, Mapping):
        return item or {}
    return _Attributes(item)


class _Attributes:
    """Any other object, read attribute by attribute."""

    def __init__(self, item: Any) -> None:
        self._item = item

    def get(self, name: str, default: Any = None) -> Any:
        return getattr(self._item, name, default)


def _tool_call_delta(call: Any) -> dict[str, Any]:
    data = call if isinstance(call, dict) else call.model_dump()
    function = data.get("function") or {}
    out: dict[str, Any] = {"index": data.get("index", 0)}
    if data.get("id"):
        out["id"] = data["id"]
        out["type"] = data.get("type") or "function"
    out["function"] = {k: v for k, v in function.items() if k in ("name", "arguments") and v}
    return out


def finish_received(stream: Any) -> bool:
    """Whether the provider sent its finish reason (LiteLLM makes up ``stop`` otherwise)."""
    return bool(
        getattr(stream, "received_finish_reason", None)
        or getattr(stream, "intermittent_finish_reason", None)
        or getattr(stream, "received_any_finish_reason", False)
    )


def reported_usage(stream: Any, final: Any) -> dict[str, Any] | None:
    """The usage the provider itself reported in ``stream`` (None: it reported none).

    ``final`` is the usage of LiteLLM's last chunk: its sum of what the provider
    reported (Anthropic's ``message_start`` and ``message_delta``), cache details
    included, or, when the provider reported none, its own count. The chunks LiteLLM
    kept tell the two apart: a provider's final usage comes with its finish reason or
    after it. Usage sent only before (Anthropic's ``message_start``) gives the prompt
    count alone.
    """
    early = finished = None
    for chunk in getattr(stream, "chunks", ()):
        fields = _fields(chunk)
        if any(_fields(choice).get("finish_reason") for choice in fields.get("choices") or ()):
            finished = True
        usage = fields.get("usage")
        if usage and finished:
            return usage_dict(final or usage)
        early = early or usage
    prompt = getattr(early, "prompt_tokens", None)
    return {"prompt_tokens": prompt} if prompt else None
