"""One "host" of the multi-host tests (tests/test_redis_hosts.py): a process that shares
nothing with the others but the Redis server and the simulator.

It warms up (imports LiteLLM), prints ``ready``, then reads one JSON command per line
on stdin and prints one JSON line per command:

- ``{"op": "ask", "content": "..."}``: one chat completion; prints its provider,
  whether it was cached, and the wall time its provider call started (or null).
- ``{"op": "burst", "n": N, "model": M}``: N uncached completions one after another
  (``model`` may pin a provider); prints the wall times their provider calls started.
- ``{"op": "pick", "seconds": S}``: uncached completions for S seconds; prints the
  providers that answered.
"""

from __future__ import annotations

import json
import os
import sys
import time

from leadfactory.llm import LLMClient, providers


def started(response: dict) -> float | None:
    """Wall time the provider call began (the answer's arrival minus its latency)."""
    if response["cached"]:
        return None
    return time.time() - response["latency_ms"] / 1000.0


def main() -> None:
    providers.load_litellm()
    client = LLMClient()
    print("ready", flush=True)
    for line in sys.stdin:
        command = json.loads(line)
        if command["op"] == "ask":
            messages = [{"role": "user", "content": command["content"]}]
            response = client.chat_completion(messages, max_tokens=20)
            result = {
                "provider": response["provider"],
                "cached": response["cached"],
                "started": started(response),
            }
        elif command["op"] == "burst":
            times = []
            for i in range(command["n"]):
                messages = [{"role": "user", "content": f"burst call {i}"}]
                response = client.chat_completion(
                    messages, model=command.get("model"), max_tokens=5, cache=False
                )
                times.append(started(response))
            result = {"started": times}
        else:  # pick
            picked, until = [], time.monotonic() + command["seconds"]
            while time.monotonic() < until:
                messages = [{"role": "user", "content": "which provider?"}]
                picked.append(
                    client.chat_completion(messages, max_tokens=5, cache=False)["provider"]
                )
                time.sleep(0.02)
            result = {"providers": picked}
        print(json.dumps(result), flush=True)
    client.close()
    sys.stdout.flush()
    os._exit(0)  # written and closed: skip the interpreter's slow teardown of LiteLLM


if __name__ == "__main__":
    main()
