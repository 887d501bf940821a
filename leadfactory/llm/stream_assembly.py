"""What a stream has delivered, chunk by chunk: the text, the tool-call deltas, the end.

Pure: :class:`Assembly` takes OpenAI-shaped chunk dicts (``chat.completion.chunk``) and
builds back the ``chat.completion`` they make; :func:`replay_chunks` does the reverse for
an answer served from the cache. "Content" is text or a tool-call delta: a chunk with only
a role, or an empty string, is not.
"""

from __future__ import annotations

import copy
from typing import Any

__all__ = ["Assembly", "has_content", "replay_chunks"]


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
