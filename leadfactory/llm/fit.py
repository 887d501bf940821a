"""Which providers can take a request at all: context window, output limit, features.

Pure decisions from a model's facts (:func:`~.model_facts.facts_for`: LiteLLM's map,
overridden per model in ``ProviderConfig.model_facts``) and the request; the flow asks
:func:`check_fit` before it spends anything on a provider (no rate-limit permit, no
ledger row, no call). An unknown fact never rules a provider out.

- **context_window**: the model cannot hold the estimated prompt, plus the safety
  margin (``LLMConfig.context_margin`` of the estimate), plus ``max_tokens``; or a
  provider whose window is no larger than one that already refused this prompt as too
  long (:class:`Refused`).
- **no_tools**, **no_json_schema**, **no_vision**: the request uses ``tools``, a
  JSON-schema ``response_format`` (or a pydantic model), or an image part, and the
  model is known to lack that feature.

A ``max_tokens`` above the model's output limit is lowered to that limit for that
provider (never a reason to skip it); the attempt says so (:meth:`Fit.notes`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .exceptions import LLMContextWindowError, LLMValidationError
from .model_facts import facts_for
from .provider_config import ProviderConfig

__all__ = [
    "FIT_REASONS",
    "Fit",
    "FitCheck",
    "Needs",
    "Refused",
    "check_fit",
    "context_window",
    "no_fit_error",
    "request_needs",
]

FIT_REASONS = frozenset({"context_window", "no_tools", "no_json_schema", "no_vision"})

# reason: (ModelFacts field, Needs field, what the request uses)
_FEATURES = (
    ("no_tools", "supports_tools", "tools", "tool calling (`tools`)"),
    ("no_json_schema", "supports_json_schema", "json_schema", "a JSON-schema `response_format`"),
    ("no_vision", "supports_vision", "vision", "image input"),
)


@dataclass(frozen=True)
class Needs:
    """The features a request uses."""

    tools: bool = False
    json_schema: bool = False
    vision: bool = False


def request_needs(messages: Iterable[Mapping[str, Any]], params: Mapping[str, Any]) -> Needs:
    """What ``messages`` and the generation ``params`` ask of a model."""
    response_format = params.get("response_format")
    if isinstance(response_format, Mapping):
        json_schema = response_format.get("type") == "json_schema"
    else:  # a pydantic model class: LiteLLM sends it as a JSON schema
        json_schema = isinstance(response_format, type)
    vision = any(
        isinstance(part, Mapping) and part.get("type") == "image_url"
        for message in messages
        if isinstance(message.get("content"), list)
        for part in message["content"]
    )
    return Needs(tools=bool(params.get("tools")), json_schema=json_schema, vision=vision)


@dataclass(frozen=True)
class Refused:
    """A provider refused this prompt as too long; its window, when known."""

    provider: str
    window: int | None


@dataclass(frozen=True)
class Fit:
    """Whether a provider can take the request, and the ``max_tokens`` to send it."""

    max_tokens: int
    requested_max_tokens: int
    reason: str | None = None  # one of FIT_REASONS: skip the provider
    error: LLMValidationError | None = None
    figures: dict[str, Any] = field(default_factory=dict)

    def notes(self) -> dict[str, int]:
        """What the provider's ``attempts[]`` entries add: a lowered ``max_tokens``."""
        if self.max_tokens == self.requested_max_tokens:
            return {}
        return {
            "max_tokens_requested": self.requested_max_tokens,
            "max_tokens_sent": self.max_tokens,
        }


@dataclass
class FitCheck:
    """:func:`check_fit` for one request, provider after provider; it remembers the
    largest known window that refused the prompt as too long (:meth:`refused_by`)."""

    model: str | None
    prompt_tokens: int
    max_tokens: int
    needs: Needs
    margin: float
    refused: Refused | None = None

    def __call__(self, provider: ProviderConfig) -> Fit:
        return check_fit(
            provider,
            self.model,
            self.prompt_tokens,
            self.max_tokens,
            self.needs,
            self.margin,
            self.refused,
        )

    def refused_by(self, provider: ProviderConfig) -> None:
        """``provider`` refused the prompt as too long: skip windows no larger."""
        window = context_window(provider, self.model)
        if window is not None and (self.refused is None or (self.refused.window or 0) < window):
            self.refused = Refused(provider.name, window)


def context_window(provider: ProviderConfig, model: str | None) -> int | None:
    """The model's context window (max input tokens), None when unknown."""
    return facts_for(provider, model).max_input_tokens


def check_fit(
    provider: ProviderConfig,
    model: str | None,
    prompt_tokens: int,
    max_tokens: int,
    needs: Needs,
    margin: float,
    refused: Refused | None = None,
) -> Fit:
    """Whether ``provider`` (with ``model``, default its own) can take the request."""
    name, model = provider.name, model or provider.default_model
    facts = facts_for(provider, model)
    sent = max_tokens
    if facts.max_output_tokens is not None and max_tokens > facts.max_output_tokens:
        sent = facts.max_output_tokens
    fits = Fit(max_tokens=sent, requested_max_tokens=max_tokens)
    window = facts.max_input_tokens
    if window is not None:
        allowance = math.ceil(prompt_tokens * margin)
        needed = prompt_tokens + allowance + sent
        figures = {
            "estimated_prompt_tokens": prompt_tokens,
            "margin_tokens": allowance,
            "max_tokens": sent,
            "needed_tokens": needed,
            "context_window": window,
        }
        if needed > window:
            message = (
                f"{name}: {model} holds {window:,} tokens; this request needs about "
                f"{needed:,} (prompt ~{prompt_tokens:,} estimated, +{allowance:,} margin, "
                f"max_tokens {sent:,})"
            )
            return _skip(fits, "context_window", LLMContextWindowError, message, name, figures)
        if refused is not None and refused.window is not None and window <= refused.window:
            figures = {"context_window": window, "refused_by": refused.provider}
            figures["refused_window"] = refused.window
            message = (
                f"{name}: {model}'s context window ({window:,} tokens) is no larger than "
                f"that of {refused.provider} ({refused.window:,}), which refused this prompt "
                "as too long"
            )
            return _skip(fits, "context_window", LLMContextWindowError, message, name, figures)
    for reason, fact, need, what in _FEATURES:
        if getattr(needs, need) and getattr(facts, fact) is False:
            message = (
                f"{name}: {model} does not support {what}, which this request uses "
                f"(set ProviderConfig.model_facts[{model!r}].{fact} if it does)"
            )
            figures = {"missing_feature": need}
            return _skip(fits, reason, LLMValidationError, message, name, figures)
    return fits


def _skip(
    fits: Fit,
    reason: str,
    cls: type[LLMValidationError],
    message: str,
    name: str,
    figures: dict[str, Any],
) -> Fit:
    error = cls(message, provider=name, metadata={"reason": reason, **figures})
    return Fit(fits.max_tokens, fits.requested_max_tokens, reason, error, figures)


def no_fit_error(
    misfits: Mapping[str, LLMValidationError], attempts: list[dict]
) -> LLMValidationError:
    """The error when no provider fits: LLMContextWindowError when the prompt is too long
    for every one, else an LLMValidationError naming each provider's reason."""
    reasons = {name: error.metadata["reason"] for name, error in misfits.items()}
    details = "; ".join(str(error) for error in misfits.values())
    metadata = {"reasons": reasons, "attempts": attempts}
    if set(reasons.values()) == {"context_window"}:
        return LLMContextWindowError(
            f"No configured model can hold this prompt ({details}). Shorten the prompt or "
            "max_tokens, or configure a model with a larger context window.",
            metadata=metadata,
        )
    return LLMValidationError(
        f"No provider fits this request ({details}). Leave out what a model lacks, or "
        "configure one that has it.",
        metadata=metadata,
    )
