"""A pipeline step that asks an LLM and turns failures into results, not crashes.

    python examples/pipeline_node.py

With API keys (or an Ollama server) in the environment it uses them. With neither, it
starts the bundled provider simulator on 127.0.0.1 and a scratch ledger, so it runs
offline and spends nothing.
"""

from __future__ import annotations

import sys
from typing import Any

from leadfactory.llm import LLMClient, LLMError, LLMQuotaExceededError, LLMValidationError
from leadfactory.llm.simulator import Fault, offline_environment


class CompanySummaryNode:
    """Summarise one company record. Returns a result dict whether the call worked or not."""

    name = "company_summary"  # tags this step's rows in the ledger (the `caller` column)

    def __init__(self, client: LLMClient | None = None) -> None:
        self.client = client or LLMClient()

    def process(self, record: dict[str, Any]) -> dict[str, Any]:
        messages = [
            {"role": "system", "content": "You are a business analyst. Answer in two sentences."},
            {"role": "user", "content": f"Summarise this company: {record['description']}"},
        ]
        try:
            response = self.client.chat_completion(
                messages, temperature=0.3, max_tokens=200, caller=self.name
            )
        except (LLMValidationError, LLMQuotaExceededError):
            raise  # our request is wrong, or the budget is spent: stop the run, not the record
        except LLMError as error:  # every provider tried failed: record it and go on
            return {
                "id": record["id"],
                "success": False,
                "error": type(error).__name__,
                "detail": str(error),
            }
        return {
            "id": record["id"],
            "success": True,
            "summary": response["choices"][0]["message"]["content"],
            "provider": response["provider"],
            "cost": response["cost"],
            "cached": response["cached"],
        }


RECORDS = [
    {"id": 1, "description": "Acme Corp makes anvils and rocket skates in Arizona."},
    {"id": 2, "description": "Globex sells logistics software to shipping firms."},
    {"id": 3, "description": "Initech writes payroll systems for banks."},
]


def main() -> int:
    with offline_environment(if_unconfigured=True) as sim, LLMClient() as client:
        if sim is not None:
            print("No API keys and no Ollama server: using the bundled simulator.\n")
        node = CompanySummaryNode(client)

        for record in RECORDS:
            print(node.process(record))

        if sim is not None:
            print("\nEvery provider now rejects its key; the node returns a failure result:")
            for provider in ("ollama", "openai", "anthropic"):
                sim.set_fault(provider, Fault.UNAUTHORIZED)
            result = node.process({"id": 4, "description": "Hooli builds compression software."})
            print({key: value for key, value in result.items() if key != "detail"})
            assert not result["success"]

        spent = sum(info["daily_cost"] for info in node.client.get_provider_status().values())
        print(f"\nSpent today, all providers: ${spent:.6f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
