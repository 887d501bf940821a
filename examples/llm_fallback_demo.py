"""A tour of leadfactory.llm that runs offline.

With no API keys and no Ollama server reachable, it starts the project's provider
simulator on 127.0.0.1 and points the providers at it, so every call below goes
through LiteLLM's real HTTP code. With real keys in the environment it uses them
(and spends a few cents).

    python examples/llm_fallback_demo.py
"""

from __future__ import annotations

import os
import socket
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path
from urllib.parse import urlparse

from leadfactory.llm import AllProvidersFailedError, FallbackStrategy, LLMClient, LLMConfig
from leadfactory.llm.simulator import Fault, Simulator

QUESTION = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "What is the capital of France?"},
]


def ollama_reachable() -> bool:
    url = urlparse(os.environ.get("OLLAMA_HOST") or "http://localhost:11434")
    try:
        with socket.create_connection((url.hostname or "localhost", url.port or 11434), 0.3):
            return True
    except OSError:
        return False


def use_simulator(stack: ExitStack) -> Simulator:
    sim = stack.enter_context(Simulator())
    os.environ.update(sim.env())
    os.environ["OPENAI_API_KEY"] = "sk-demo-not-a-real-key"
    os.environ["ANTHROPIC_API_KEY"] = "sk-ant-demo-not-a-real-key"
    for provider in ("OPENAI", "ANTHROPIC", "OLLAMA"):
        os.environ.setdefault(f"{provider}_RETRY_DELAY", "0.05")
    print(
        "No API keys and no Ollama server found: using the built-in simulator\n"
        f"  openai    -> {sim.base_url('openai')}\n"
        f"  anthropic -> {sim.base_url('anthropic')}\n"
        f"  ollama    -> {sim.base_url('ollama')}\n"
    )
    return sim


def show(response: dict) -> None:
    usage = response["usage"]
    print(f"  answer   : {response['choices'][0]['message']['content']}")
    print(f"  provider : {response['provider']}  (cached: {response['cached']})")
    print(
        f"  usage    : {usage['prompt_tokens']} prompt + {usage['completion_tokens']} "
        f"completion = {usage['total_tokens']} tokens"
    )
    print(f"  cost     : ${response['cost']:.6f}   latency: {response['latency_ms']:.1f} ms")
    for attempt in response["attempts"]:
        error = f"  {attempt['error']}" if attempt["error"] else ""
        print(f"    - {attempt['provider']:<10} {attempt['outcome']:<9}{error}")


def main() -> int:
    with ExitStack() as stack:
        sim = None
        has_keys = os.environ.get("OPENAI_API_KEY") or os.environ.get("ANTHROPIC_API_KEY")
        if not has_keys and not ollama_reachable():
            sim = use_simulator(stack)
        os.environ.setdefault(
            "LLM_LEDGER_PATH", str(Path(tempfile.gettempdir()) / "leadfactory-llm-demo.db")
        )
        os.environ.setdefault("LLM_ENABLE_CACHING", "false")  # show live calls every time

        config = LLMConfig.from_environment()
        client = stack.enter_context(LLMClient(config))
        print(f"Ledger: {client.ledger.path}\n")

        print("1. A normal answer (smart_fallback: Ollama first, it is free)")
        show(client.chat_completion(QUESTION, temperature=0.7, max_tokens=100))

        if sim is not None:
            print("\n2. The first provider fails; the fallback saves the call")
            sim.set_fault("ollama", Fault.REFUSE)
            show(client.chat_completion(QUESTION, max_tokens=100))
            sim.clear_faults()

        print("\n3. The order each strategy tries")
        for strategy in FallbackStrategy:
            config.fallback_strategy = strategy
            print(f"  {strategy.value:<18} {' -> '.join(config.get_provider_order())}")
        config.fallback_strategy = FallbackStrategy.SMART_FALLBACK

        if sim is not None:
            print("\n4. Every provider fails")
            sim.set_fault("ollama", Fault.UNAVAILABLE)
            sim.set_fault("openai", Fault.RATE_LIMIT, retry_after=20)
            sim.set_fault("anthropic", Fault.UNAUTHORIZED)
            failing = LLMClient(LLMConfig.from_environment())
            stack.callback(failing.close)
            try:
                failing.chat_completion(QUESTION, max_tokens=100)
            except AllProvidersFailedError as error:
                print("  AllProvidersFailedError:")
                for provider, cause in error.provider_errors.items():
                    print(f"    - {provider:<10} {type(cause).__name__}: {cause}")
            sim.clear_faults()

        print("\n5. Spend so far, from the ledger")
        for name, info in client.get_provider_status().items():
            print(
                f"  {name:<10} ${info['daily_cost']:.6f} today, "
                f"{info['requests_today']} requests, {info['errors_today']} errors"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
