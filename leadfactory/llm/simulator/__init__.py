"""A local stand-in for the OpenAI, Anthropic and Ollama HTTP APIs, with fault injection.

A real HTTP/1.1 server on 127.0.0.1. Each provider name gets its own ephemeral port, so
one can fail while another works::

    with Simulator() as sim:
        sim.set_fault("openai", Fault.RATE_LIMIT, retry_after=2)
        litellm.completion(model="openai/gpt-4", api_base=sim.base_url("openai"), ...)

Faults apply to the generation routes (chat/completions, messages, api/chat, api/generate,
and Ollama's OpenAI-compatible /v1/chat/completions); probes such as ``GET /api/tags`` are
answered normally unless the port is refused. :func:`offline_environment` points the
whole environment at a simulator for a ``with`` block, as the examples do.
``python -m leadfactory.llm.simulator`` serves until Ctrl-C. Standard library only.

Modules: :mod:`.vendors` (what each vendor answers), :mod:`.tools` (tool calls and
JSON-schema answers per protocol), :mod:`.faults` (what a faulty one sends: error
bodies, misbehaving usage and choices), :mod:`.refusals` (context-length and
content-policy refusals), :mod:`.usage` (scripted detailed usage: cached, cache-write
and reasoning tokens), :mod:`.server` (the HTTP side and :class:`Simulator`;
:mod:`.http_request` reads a request), :mod:`.offline` (:func:`offline_environment`).
"""

from __future__ import annotations

from .offline import offline_environment, real_provider_configured
from .server import Simulator
from .usage import Usage
from .vendors import Fault

__all__ = ["Fault", "Simulator", "Usage", "offline_environment", "real_provider_configured"]
