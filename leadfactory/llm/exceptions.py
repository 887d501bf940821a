"""Every error the library raises, under one root.

::

    LLMError
    ├── LLMConnectionError         network failure: refused, reset, DNS, TLS
    │   └── LLMTimeoutError        connect or read timeout
    ├── LLMProviderError           the provider failed on its side (5xx) or sent a broken answer
    ├── LLMRateLimitError          429 rate limit, or our own RPM/TPM limit (``retry_after``)
    ├── LLMQuotaExceededError      provider quota/billing exhausted, or our budget would be exceeded
    ├── LLMAuthenticationError     401 / 403: bad or unauthorised API key
    ├── LLMModelNotFoundError      404: the provider does not serve that model
    ├── LLMValidationError         a bad request: ours (before any call) or the provider's 4xx
    │   ├── LLMConfigurationError  a malformed setting, naming the variable or field
    │   ├── LLMContextWindowError  the prompt (plus max_tokens) is too long for the model
    │   └── LLMContentPolicyError  the provider refused the content under its usage policy
    ├── LedgerBusyError            the ledger file stayed locked by other writers too long
    ├── LLMLedgerUnavailableError  the PostgreSQL ledger does not answer: no paid call is made
    ├── LLMStreamInterruptedError  a stream failed after its first content reached the caller
    └── AllProvidersFailedError    every provider tried failed (``provider_errors``)

Errors that came from a provider keep the original exception as ``__cause__``, with the
API key redacted from every text of its chain (:mod:`.redact`).
Nothing here imports LiteLLM, and no message, repr or attribute holds an API key.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "AllProvidersFailedError",
    "LLMAuthenticationError",
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
]


class LLMError(Exception):
    """Root of every error this library raises.

    ``provider`` names the provider the error came from (None for our own checks),
    ``status_code`` is the HTTP status when there was one, and ``metadata`` holds
    structured details (limits, amounts, field names) for programs to read.
    """

    def __init__(
        self,
        message: str,
        provider: str | None = None,
        status_code: int | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.provider = provider
        self.status_code = status_code
        self.metadata: dict[str, Any] = dict(metadata or {})

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        parts = [repr(self.message)]
        if self.provider is not None:
            parts.append(f"provider={self.provider!r}")
        if self.status_code is not None:
            parts.append(f"status_code={self.status_code!r}")
        return f"{type(self).__name__}({', '.join(parts)})"

    def __reduce__(self):  # keep attributes across pickling (multiprocessing pipelines)
        return (_rebuild, (type(self), self.message, self.__dict__))


def _rebuild(cls: type[LLMError], message: str, state: dict[str, Any]) -> LLMError:
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.__dict__.update(state)
    return error


class LLMConnectionError(LLMError):
    """The provider could not be reached: connection refused or reset, DNS, TLS."""


class LLMTimeoutError(LLMConnectionError):
    """The provider did not connect or answer within the provider's ``timeout``."""


class LLMProviderError(LLMError):
    """The provider failed on its side (5xx) or sent an answer that could not be read."""


class LLMRateLimitError(LLMError):
    """A rate limit was hit: the provider's 429, or this library's own RPM/TPM limit.

    ``retry_after`` is the number of seconds to wait before trying again, when known.
    """

    def __init__(
        self,
        message: str,
        provider: str | None = None,
        retry_after: float | None = None,
        status_code: int | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message, provider=provider, status_code=status_code, metadata=metadata)
        self.retry_after = retry_after


class LLMQuotaExceededError(LLMError):
    """A quota is exhausted: the provider's billing quota, or this library's budget.

    For budget refusals ``metadata`` holds ``limit`` (``max_cost_per_request``,
    ``daily_cost_limit`` or ``monthly_cost_limit``), ``limit_usd``, ``spent_usd``,
    ``estimated_usd`` and ``over_by_usd``.
    """


class LLMAuthenticationError(LLMError):
    """The provider refused the credentials (401) or the permission (403)."""


class LLMModelNotFoundError(LLMError):
    """The provider does not serve the requested model (404)."""


class LLMValidationError(LLMError):
    """The request is malformed: caught by our own checks before any call (``provider``
    is None), or refused by a provider with a 4xx that fits no other class."""


class LLMConfigurationError(LLMValidationError, ValueError):
    """A configuration value is malformed; the message names the variable or field."""


class LLMContextWindowError(LLMValidationError):
    """The prompt plus ``max_tokens`` does not fit the model's context window.

    Raised by a provider's context-length refusal (OpenAI's ``context_length_exceeded``,
    or LiteLLM's ``ContextWindowExceededError``), or by the client itself, with no call,
    when no configured model can hold the estimated prompt (``metadata["reasons"]``
    then says what ruled out each provider).
    """


class LLMContentPolicyError(LLMValidationError):
    """The provider refused the request under its content policy (OpenAI's
    ``content_policy_violation``, or LiteLLM's ``ContentPolicyViolationError``)."""


class LedgerBusyError(LLMError):
    """Other writers kept the ledger file locked for longer than its ``busy_timeout``."""


class LLMLedgerUnavailableError(LLMError):
    """The ledger's database (``LLM_LEDGER_URL``) does not answer or refused the write.

    No paid call is made without its reservation; free providers may still answer, and
    their rows are then not written (a warning says so). ``metadata["ledger"]`` is the
    ledger's URL without its password.
    """


class LLMStreamInterruptedError(LLMError):
    """A stream failed after its first content reached the caller; nothing is retried.

    ``partial_text`` is exactly the text delivered, ``tool_calls`` the tool-call deltas
    received (merged per call), ``usage`` the usage charged (the provider's when it
    arrived, else an estimate: ``usage["estimated"]``), ``provider`` the provider that
    streamed and ``attempts`` every attempt of the call, this one last.
    """

    def __init__(
        self,
        message: str,
        provider: str | None = None,
        *,
        partial_text: str = "",
        tool_calls: list[dict[str, Any]] | None = None,
        usage: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message, provider=provider, metadata=metadata)
        self.partial_text = partial_text
        self.tool_calls: list[dict[str, Any]] = list(tool_calls or ())
        self.usage: dict[str, Any] = dict(usage or {})
        self.attempts: list[dict[str, Any]] = []


class AllProvidersFailedError(LLMError):
    """Every provider that was tried failed.

    ``provider_errors`` maps each provider name to the error it raised (or the reason it
    was skipped), in the order they were tried.
    """

    def __init__(
        self,
        provider_errors: Mapping[str, LLMError | BaseException],
        message: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        self.provider_errors: dict[str, LLMError | BaseException] = dict(provider_errors)
        if message is None:
            details = "; ".join(
                f"{name}: {type(error).__name__}: {error}"
                for name, error in self.provider_errors.items()
            )
            message = f"All providers failed ({details})" if details else "No provider was tried"
        super().__init__(message, metadata=metadata)
