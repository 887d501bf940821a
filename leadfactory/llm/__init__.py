"""leadfactory.llm: one client for many LLM providers, with fallback, budgets and a ledger.

::

    from leadfactory.llm import LLMClient

    client = LLMClient()  # configured from the environment and .env
    response = client.chat_completion([{"role": "user", "content": "Hello"}])
    print(response["provider"], response["choices"][0]["message"]["content"])

Importing this package is cheap: LiteLLM, the ledger and the cache load on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .exceptions import (
    AllProvidersFailedError,
    LedgerBusyError,
    LLMAuthenticationError,
    LLMConfigurationError,
    LLMConnectionError,
    LLMContentPolicyError,
    LLMContextWindowError,
    LLMError,
    LLMLedgerUnavailableError,
    LLMModelNotFoundError,
    LLMProviderError,
    LLMQuotaExceededError,
    LLMRateLimitError,
    LLMStreamInterruptedError,
    LLMTimeoutError,
    LLMValidationError,
)

if TYPE_CHECKING:
    from .batch import BatchItem, BatchResults, LLMBatchNotRunError
    from .client import LLMClient
    from .config import CostConfig, FallbackStrategy, LLMConfig, ProviderConfig
    from .ledger import BudgetAlert

# Loaded on first access, so that importing the package (and the CLI's ledger
# commands) does not pay for pydantic, the client or LiteLLM.
_LAZY = {
    "BatchItem": "batch.results",
    "BatchResults": "batch.results",
    "BudgetAlert": "ledger",
    "LLMBatchNotRunError": "batch.results",
    "LLMClient": "client",
    "CostConfig": "config",
    "FallbackStrategy": "config",
    "LLMConfig": "config",
    "ProviderConfig": "config",
}

__all__ = [
    "AllProvidersFailedError",
    "BatchItem",
    "BatchResults",
    "BudgetAlert",
    "CostConfig",
    "FallbackStrategy",
    "LLMAuthenticationError",
    "LLMBatchNotRunError",
    "LLMClient",
    "LLMConfig",
    "LLMConfigurationError",
    "LLMConnectionError",
    "LLMContentPolicyError",
    "LLMContextWindowError",
    "LLMError",
    "LLMModelNotFoundError",
    "LLMProviderError",
    "LLMQuotaExceededError",
    "LLMRateLimitError",
    "LLMStreamInterruptedError",
    "LLMTimeoutError",
    "LLMValidationError",
    "LLMLedgerUnavailableError",
    "LedgerBusyError",
    "ProviderConfig",
]

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = importlib.import_module(f"{__name__}.{_LAZY[name]}")
        value = getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'leadfactory.llm' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
