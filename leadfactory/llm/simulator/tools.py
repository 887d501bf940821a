"""Tool calls and structured output, as each simulated vendor answers them.

A request that offers tools is answered with a call of one tool (the one ``tool_choice``
names, else the first), whose arguments are a sample of its parameter schema; a request
that asks for a JSON schema (or JSON mode) is answered with a sample of the schema as
its text. Each wire protocol has its shapes:

- OpenAI (and Ollama's ``/v1``): ``tools[].function.parameters``, ``tool_choice``
  ``{"type": "function", "function": {"name": ...}}`` or ``"none"``; the answer's
  ``message.tool_calls[]`` with ``arguments`` as a JSON string, ``finish_reason``
  ``tool_calls``; ``response_format`` ``json_schema`` or ``json_object``.
- Anthropic: ``tools[].input_schema``, ``tool_choice`` ``{"type": "tool", "name": ...}``
  (how LiteLLM forces its ``json_tool_call`` for a schema) or ``{"type": "none"}``;
  ``content[]`` holds a ``tool_use`` block with ``input`` as an object, ``stop_reason``
  ``tool_use``; ``output_format`` ``{"type": "json_schema", "schema": ...}`` for native
  structured output.
- Ollama's ``/api/chat``: ``tools[].function.parameters``; ``message.tool_calls[]`` with
  ``arguments`` as an object; ``format`` is ``"json"`` or a schema.

Pure functions on parsed JSON: :mod:`.vendors` calls them on its answers.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

__all__ = ["anthropic_answer", "ollama_answer", "openai_answer", "sample"]


def sample(schema: Any, depth: int = 0) -> Any:
    """A small value that satisfies the JSON ``schema`` (its first choice at every turn)."""
    if not isinstance(schema, dict) or depth > 8:
        return "sample"
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    for combinator in ("anyOf", "oneOf", "allOf"):
        if isinstance(schema.get(combinator), list) and schema[combinator]:
            return sample(schema[combinator][0], depth + 1)
    kind = schema.get("type", "object" if "properties" in schema else "string")
    if isinstance(kind, list):  # ["string", "null"]
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        properties = schema.get("properties") or {}
        return {name: sample(sub, depth + 1) for name, sub in properties.items()}
    if kind == "array":
        return [sample(schema.get("items"), depth + 1)] * max(1, schema.get("minItems", 1))
    return {"integer": 1, "number": 1.5, "boolean": True, "null": None}.get(kind, "sample")


def _named(tools: list[Any], name: Any, key: str) -> dict[str, Any] | None:
    """The tool called ``name`` (else the first one); ``key`` reads a tool's name."""
    found = [t for t in tools if isinstance(t, dict)]
    for tool in found:
        if name is not None and _name(tool, key) == name:
            return tool
    return found[0] if found else None


def _name(tool: dict[str, Any], key: str) -> Any:
    return (tool.get("function") or {}).get("name") if key == "function" else tool.get("name")


def _openai_tool(body: dict[str, Any]) -> dict[str, Any] | None:
    """The OpenAI-shaped tool ``body`` asks to call, or None."""
    tools, choice = body.get("tools"), body.get("tool_choice")
    if not isinstance(tools, list) or not tools or choice == "none":
        return None
    name = ((choice or {}).get("function") or {}).get("name") if isinstance(choice, dict) else None
    return _named(tools, name, "function")


def _schema_text(response_format: Any) -> str | None:
    """A JSON text for an OpenAI ``response_format`` (schema or JSON mode), else None."""
    if not isinstance(response_format, dict):
        return None
    if response_format.get("type") == "json_schema":
        return json.dumps(sample((response_format.get("json_schema") or {}).get("schema")))
    if response_format.get("type") == "json_object":
        return json.dumps({"answer": "sample"})
    return None


def openai_answer(body: dict[str, Any], message: dict[str, Any], finish: str) -> tuple[dict, str]:
    """The message and finish reason of an OpenAI answer to ``body``, tools considered."""
    tool = _openai_tool(body)
    if tool is not None:
        function = tool.get("function") or {}
        call = {
            "id": "call_" + secrets.token_hex(12),
            "type": "function",
            "function": {
                "name": function.get("name"),
                "arguments": json.dumps(sample(function.get("parameters"))),
            },
        }
        return {**message, "content": None, "tool_calls": [call]}, "tool_calls"
    text = _schema_text(body.get("response_format"))
    return ({**message, "content": text}, "stop") if text is not None else (message, finish)


def anthropic_answer(body: dict[str, Any], message: dict[str, Any]) -> dict[str, Any]:
    """An Anthropic message answering ``body``: a ``tool_use`` block, or schema text."""
    tools, choice = body.get("tools"), body.get("tool_choice")
    kind = choice.get("type") if isinstance(choice, dict) else None
    if isinstance(tools, list) and tools and kind != "none":
        tool = _named(tools, choice.get("name") if kind == "tool" else None, "name") or {}
        use = {
            "type": "tool_use",
            "id": "toolu_" + secrets.token_hex(12),
            "name": tool.get("name"),
            "input": sample(tool.get("input_schema")),
        }
        return {**message, "content": [use], "stop_reason": "tool_use"}
    output = body.get("output_format")
    if isinstance(output, dict) and output.get("type") == "json_schema":
        text = json.dumps(sample(output.get("schema")))
        return {**message, "content": [{"type": "text", "text": text}], "stop_reason": "end_turn"}
    return message


def ollama_answer(body: dict[str, Any], final: dict[str, Any]) -> dict[str, Any]:
    """Ollama's final ``/api/chat`` object answering ``body``: tool calls, or ``format``."""
    tool = _openai_tool(body)
    if tool is not None:
        function = tool.get("function") or {}
        call = {
            "function": {
                "name": function.get("name"),
                "arguments": sample(function.get("parameters")),
            }
        }
        message = {"role": "assistant", "content": "", "tool_calls": [call]}
        return {**final, "message": message, "done_reason": "stop"}
    fmt = body.get("format")
    if fmt == "json" or isinstance(fmt, dict):
        text = json.dumps(sample(fmt) if isinstance(fmt, dict) else {"answer": "sample"})
        return {**final, "message": {"role": "assistant", "content": text}, "done_reason": "stop"}
    return final
