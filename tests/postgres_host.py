"""One "host" of the multi-host tests: a process of worker threads calling the simulator.

Run as ``python -m tests.postgres_host WORKERS CALLS`` in an environment from
``tests.conftest.child_environment`` plus the simulator's URLs and ``LLM_LEDGER_URL``.
Prints ``started`` once its client is ready, then one JSON line: the request ids answered,
the budget refusals, any other error (repr), and the budget alerts this host announced.
"""

from __future__ import annotations

import json
import sys
import threading

from leadfactory.llm import LLMClient, LLMConfig, LLMError, LLMQuotaExceededError


def main(workers: int, calls: int) -> None:
    config = LLMConfig(enable_caching=False)
    config.providers["ollama"].enabled = False
    alerts: list[str] = []
    client = LLMClient(config, on_budget_alert=lambda alert: alerts.append(alert.period))
    client.ledger.ping()
    print("started", flush=True)
    answered: list[str] = []
    refused: list[str] = []
    other: list[str] = []
    lock = threading.Lock()

    def work(worker: int) -> None:
        for i in range(calls):
            content = f"host {id(client)} worker {worker} call {i}"
            try:
                response = client.chat_completion(
                    [{"role": "user", "content": content}], max_tokens=20
                )
            except LLMQuotaExceededError as refusal:
                with lock:
                    refused.append(str(refusal))
            except LLMError as error:
                with lock:
                    other.append(repr(error))
            else:
                with lock:
                    answered.append(response["request_id"])

    threads = [threading.Thread(target=work, args=(n,)) for n in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    client.close()
    summary = {"answered": answered, "refused": refused, "other": other, "alerts": alerts}
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))
