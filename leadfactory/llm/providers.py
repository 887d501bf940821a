"""The seam in front of the network: the only module that calls LiteLLM.

A :class:`ProviderConfig` becomes explicit per-call LiteLLM arguments (model
route, base URL, key, timeout, retries off), and LiteLLM's answer becomes a
plain OpenAI-shaped dict. LiteLLM is imported on first use, never at import
time: ``import litellm`` costs seconds.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .litellm_quiet import unlogged, unlogged_stream
from .pricing import price_for
from .provider_config import ProviderConfig

__all__ = [
    "AnswerNotRead",
    "aclose_stream",
    "acomplete",
    "anext_chunk",
    "aopen_stream",
    "close_stream",
    "next_chunk",
    "open_stream",
    "call_arguments",
    "complete",
    "count_prompt_tokens",
    "litellm_loaded",
    "litellm_model",
    "load_litellm",
    "usage_dict",
]

# Routes for the built-in providers; a custom provider without a prefix is OpenAI-compatible.
# Ollama is reached through its OpenAI-compatible API (``<host>/v1``): LiteLLM's native
# ``ollama_chat/`` route costs about twice the client time of ``openai/`` per call (a price
# lookup for a model missing from its map) and probes ``/api/show`` on the side. A model
# written with an explicit ``ollama/`` or ``ollama_chat/`` prefix keeps the native route.
_ROUTES = {"openai": "openai", "anthropic": "anthropic", "ollama": "openai"}
_DEFAULT_ROUTE = "openai"
_ollama_routes = ("ollama/", "ollama_chat/")
_OLLAMA_PLACEHOLDER_KEY = "ollama"  # Ollama ignores keys; the OpenAI SDK insists on one

_litellm: Any = None
_litellm_lock = threading.Lock()


def load_litellm() -> Any:
    """Import LiteLLM once, offline and quiet.

    Prices come from LiteLLM's bundled map (never fetched from the network), and
    its help banners are switched off: the one module global this library sets.
    """
    global _litellm
    if _litellm is None:
        with _litellm_lock:
            if _litellm is None:
                os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
                import litellm

                litellm.suppress_debug_info = True
                _litellm = litellm
    return _litellm


def litellm_loaded() -> bool:
    """Whether LiteLLM has been imported (by :func:`load_litellm`) in this process."""
    return _litellm is not None


def _has_route_prefix(model: str) -> bool:
    prefix, sep, _ = model.partition("/")
    if not sep:
        return False
    if prefix in _ROUTES.values() or prefix == "ollama":
        return True
    return prefix in load_litellm().provider_list


def litellm_model(provider: ProviderConfig, model: str | None = None) -> str:
    """The LiteLLM model string for ``provider`` (``openai/gpt-4``, ``anthropic/claude-3``)."""
    model = model or provider.default_model
    if model.startswith(_ollama_routes) or _has_route_prefix(model):
        return model
    route = _ROUTES.get(provider.name, _DEFAULT_ROUTE)
    return f"{route}/{model}"


def call_arguments(
    provider: ProviderConfig,
    messages: Sequence[Mapping[str, Any]],
    *,
    model: str | None = None,
    params: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Every argument of one LiteLLM call, explicit: nothing comes from LiteLLM globals.

    LiteLLM's own retries are off (``num_retries=0``, ``max_retries=0``) so the
    client's retry policy is the only one. The model's price, as the client charges
    it (:func:`.pricing.price_for`), goes along as LiteLLM's per-call custom pricing:
    it spares LiteLLM a lookup in its price map (which, for a model missing from the
    map, costs more than the call itself), and LiteLLM's own figure agrees with the
    ledger's (a blended provider price of 0 for a model the map prices made LiteLLM
    warn "Billable request priced at $0" on every call).
    """
    load_litellm()  # imported here, before the call is timed: latency_ms never includes it
    price = price_for(provider, model)
    route = litellm_model(provider, model)
    arguments: dict[str, Any] = {
        "input_cost_per_token": price.input,
        "output_cost_per_token": price.output,
        **provider.extra_params,
        **(params or {}),
        "model": route,
        "messages": list(messages),
        "timeout": provider.timeout,
        "num_retries": 0,
        "max_retries": 0,
    }
    key = provider.secret_key()
    ollama_compatible = provider.name == "ollama" and not route.startswith(_ollama_routes)
    if provider.base_url:
        arguments["api_base"] = provider.base_url
        if ollama_compatible and not provider.base_url.endswith("/v1"):
            arguments["api_base"] = provider.base_url + "/v1"
    if key:
        arguments["api_key"] = key
    elif ollama_compatible:  # never let the OpenAI SDK fall back to OPENAI_API_KEY
        arguments["api_key"] = _OLLAMA_PLACEHOLDER_KEY
    return arguments


def complete(
    arguments: Mapping[str, Any], before_send: Callable[[], None] | None = None
) -> dict[str, Any]:
    """One blocking provider call; LiteLLM's exceptions propagate unchanged.

    It goes through this process's HTTP client (:mod:`.http_clients`): never a pooled
    connection inherited from a parent process, and ``timeout`` bounds the whole call.
    ``before_send()`` runs before the request leaves (it raises to stop it): once
    LiteLLM has built it, or first when the call does not go through that client.
    """
    clients = _http_clients()
    client = clients.client_for(arguments, asynchronous=False)
    answers = clients.watch_answers()
    checked = contextlib.nullcontext()
    if before_send is not None and client is None:
        before_send()
    elif before_send is not None:
        checked = clients.checked_before_sending(before_send)
    try:
        litellm = load_litellm()
        with unlogged(litellm), checked:
            response = litellm.completion(**arguments, client=client)
        return to_openai_dict(response, route=arguments["model"])
    except Exception as error:
        _raise_if_answered(answers, error)
        raise


async def acomplete(arguments: Mapping[str, Any]) -> dict[str, Any]:
    """One provider call on the running event loop (with that loop's HTTP client)."""
    clients = _http_clients()
    client = clients.client_for(arguments, asynchronous=True)
    answers = clients.watch_answers()
    try:
        litellm = load_litellm()
        with unlogged(litellm):
            response = await litellm.acompletion(**arguments, client=client)
        return to_openai_dict(response, route=arguments["model"])
    except Exception as error:
        _raise_if_answered(answers, error)
        raise


# -- streamed calls -----------------------------------------------------------------------
# LiteLLM's stream (CustomStreamWrapper) is opened with usage asked for, read one chunk at a
# time and closed (which closes the HTTP response, releasing its connection). Its own
# MidStreamFallbackError is unwrapped: the provider's error inside is what classify reads.


def _stream_arguments(arguments: Mapping[str, Any]) -> dict[str, Any]:
    options = {**(arguments.get("stream_options") or {}), "include_usage": True}
    return {**arguments, "stream": True, "stream_options": options}


def open_stream(arguments: Mapping[str, Any]) -> Any:
    """Start one streamed call (some routes send the request on the first read)."""
    clients = _http_clients()
    client = clients.client_for(arguments, asynchronous=False)
    litellm = load_litellm()
    try:
        stream = litellm.completion(**_stream_arguments(arguments), client=client)
    except Exception as error:
        raise _unwrapped(error) from None
    return unlogged_stream(litellm, stream)


async def aopen_stream(arguments: Mapping[str, Any]) -> Any:
    """:func:`open_stream` on the running event loop."""
    clients = _http_clients()
    client = clients.client_for(arguments, asynchronous=True)
    litellm = load_litellm()
    try:
        stream = await litellm.acompletion(**_stream_arguments(arguments), client=client)
    except Exception as error:
        raise _unwrapped(error) from None
    return unlogged_stream(litellm, stream)


def next_chunk(stream: Any) -> Any | None:
    """The stream's next chunk (LiteLLM's), or None at its end."""
    try:
        return next(stream, None)
    except Exception as error:
        raise _unwrapped(error) from None


async def anext_chunk(stream: Any) -> Any | None:
    try:
        return await anext(stream, None)
    except Exception as error:
        raise _unwrapped(error) from None


def close_stream(stream: Any) -> None:
    """Close the stream and its HTTP response (a no-op when already closed)."""
    stream.close()


async def aclose_stream(stream: Any) -> None:
    await stream.aclose()


def _unwrapped(error: Exception) -> Exception:
    """The provider's error that LiteLLM wrapped in its MidStreamFallbackError, if any."""
    inner = getattr(error, "original_exception", None)
    if type(error).__name__ == "MidStreamFallbackError" and isinstance(inner, Exception):
        return inner
    return error


class AnswerNotRead(Exception):
    """The provider answered with a success status, but reading its answer failed in this
    process (``__cause__``: what LiteLLM or this module raised). The call reached the
    provider, which may bill it: :mod:`.charges` charges it, marked estimated."""


def _raise_if_answered(statuses: list[int], error: Exception) -> None:
    """After a success status (retries are off: one request per call), a failure is ours."""
    if any(200 <= status < 300 for status in statuses):
        raise AnswerNotRead(type(error).__name__) from error


def _http_clients() -> Any:
    load_litellm()  # httpx and the OpenAI SDK come with it
    from . import http_clients

    return http_clients


def count_prompt_tokens(model: str, messages: Sequence[Mapping[str, Any]]) -> int:
    """Prompt tokens as LiteLLM counts them for ``model`` (its bundled tokenizers)."""
    return int(load_litellm().token_counter(model=model, messages=list(messages)))


def _message_dict(message: Any) -> dict[str, Any]:
    data = message if isinstance(message, dict) else message.model_dump()
    out = {"role": data.get("role") or "assistant", "content": data.get("content")}
    for optional in ("tool_calls", "function_call", "refusal"):
        if data.get(optional) is not None:
            out[optional] = data[optional]
    if out.get("tool_calls"):  # OpenAI's shape whoever answered: no stray keys, no ""
        out["tool_calls"] = [_tool_call(call) for call in out["tool_calls"]]
        out["content"] = out["content"] or None
    return out


def _tool_call(call: Any) -> Any:
    """One tool call as OpenAI writes it: id, type, function name and JSON arguments."""
    if not isinstance(call, dict) or not isinstance(call.get("function"), dict):
        return call
    function = call["function"]
    return {
        "id": call.get("id"),
        "type": call.get("type") or "function",
        "function": {"name": function.get("name"), "arguments": function.get("arguments")},
    }


def to_openai_dict(response: Any, route: str = "") -> dict[str, Any]:
    """LiteLLM's ModelResponse as a plain, JSON-serialisable OpenAI chat completion.

    ``model`` is the name the provider reported, without LiteLLM's route prefix.
    """
    usage = getattr(response, "usage", None)
    model = str(response.model or route.partition("/")[2])
    prefix = route.partition("/")[0] + "/"
    if model.startswith(prefix):
        model = model[len(prefix) :]
    return {
        "id": response.id,
        "object": "chat.completion",
        "created": int(response.created),
        "model": model,
        "choices": [
            {
                "index": choice.index,
                "message": _message_dict(choice.message),
                "finish_reason": choice.finish_reason,
            }
            for choice in response.choices
        ],
        "usage": usage_dict(usage),
    }


def usage_dict(usage: Any) -> dict[str, Any]:
    """LiteLLM's usage in OpenAI's shape: the three counts and the detail counts present.

    ``prompt_tokens_details`` (``cached_tokens``: cache reads; ``cache_write_tokens``:
    cache writes, Anthropic's ``cache_creation_input_tokens``) and
    ``completion_tokens_details`` (``reasoning_tokens``, part of ``completion_tokens``)
    are what the price of an answer depends on.
    """
    prompt = int(getattr(usage, "prompt_tokens", 0) or 0)
    completion = int(getattr(usage, "completion_tokens", 0) or 0)
    out: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": int(getattr(usage, "total_tokens", 0) or prompt + completion),
    }
    for name in ("prompt_tokens_details", "completion_tokens_details"):
        details = _detail_counts(getattr(usage, name, None))
        if details:
            out[name] = details
    return out


def _detail_counts(details: Any) -> dict[str, int]:
    if details is None:
        return {}
    data = details if isinstance(details, dict) else details.model_dump()
    counts = {key: value for key, value in data.items() if type(value) is int}
    if "cache_write_tokens" in counts:  # LiteLLM's alias of the same count
        counts.pop("cache_creation_tokens", None)
    return counts
