"""A tour of leadfactory.llm that runs offline.

With no API keys and no Ollama server reachable, it starts the project's provider
simulator on 127.0.0.1 and points the providers at it, so every call below goes
through LiteLLM's real HTTP code. With real keys in the environment it uses them
(and spends a few cents).

    python examples/llm_fallback_demo.py
"""

from __future__ import annotations

import os
import sys

from leadfactory.llm import AllProvidersFailedError, FallbackStrategy, LLMClient, LLMConfig
from leadfactory.llm.simulator import Fault, Simulator, offline_environment

QUESTION = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "What is the capital of France?"},
]


def announce(sim: Simulator) -> None:
    print(
        "No API keys and no Ollama server found: using the built-in simulator\n"
        f"  openai    -> {sim.base_url('openai')}\n"
        f"  anthropic -> {sim.base_url('anthropic')}\n"
        f"  ollama    -> {sim.base_url('ollama')}\n"
    )


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
        print(f"    - {attempt['provider']:<10} {attempt['outcome']:<9}{error}".rstrip())


def main() -> int:
    scratch_ledger = not os.environ.get("LLM_LEDGER_PATH")
    fast_retries = {f"{p}_RETRY_DELAY": "0.05" for p in ("OPENAI", "ANTHROPIC", "OLLAMA")}
    with offline_environment(if_unconfigured=True, env=fast_retries) as sim:
        if sim is not None:
            announce(sim)
        config = LLMConfig(enable_caching=False)  # show live calls every time
        with LLMClient(config) as client:
            tour(client, config, sim)
    if sim is not None and scratch_ledger:
        print(
            "\nThat ledger was a scratch file, deleted now. To keep it and look at it:\n"
            "  export LLM_LEDGER_PATH=/tmp/demo-ledger.db\n"
            "  python examples/llm_fallback_demo.py\n"
            "  leadfactory-llm costs --by provider"
        )
    return 0


def tour(client: LLMClient, config: LLMConfig, sim: Simulator | None) -> None:
    print(f"Ledger: {client.ledger.path}\n")

    print("1. A normal answer (smart_fallback: Ollama first, it is free)")
    print("   (the first call also loads LiteLLM, which takes a few seconds)")
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
        with LLMClient(LLMConfig(enable_caching=False)) as failing:
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


if __name__ == "__main__":
    sys.exit(main())
