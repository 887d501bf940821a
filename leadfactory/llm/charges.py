"""What a provider attempt is charged: its reported usage when believable, else an estimate.

A provider's ``usage`` is what it bills, but it is data from outside the process: an
OpenAI-compatible server may leave it out, a broken one may report negative or absurd
counts. This module decides the token counts an attempt is charged (:class:`Charge`);
the flow prices them, settles them in the ledger and puts them in the response. The rule
is that a call that may have reached a provider is charged, and a charge never raises:

- usage within bounds is charged as reported;
- a count that is missing, not a whole number, negative, or zero where the request must
  have produced tokens (every prompt has some; a non-empty answer too) is estimated: the
  prompt from the client's prompt estimate, the completion from the answer's text;
- a count above what the request could have produced is clamped to that bound:
  :func:`prompt_bound` (one token per character of everything sent, plus room for the
  vendor's framing and each image or file) and :func:`completion_bound` (twice
  ``max_tokens`` per choice, plus 256);
- an attempt that failed after its request was sent but may still have been billed (cancelled
  or timed out while waiting for the answer; or answered with a success status whose body
  could not be read, such as an Anthropic answer without usage, which LiteLLM cannot
  parse) is charged what was reserved for it: the prompt estimate plus the whole
  ``max_tokens`` (:func:`worst_case`).

Estimated and clamped charges are marked ``estimated`` on the ledger row and logged.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from .classify import classify, content_filter_refusal
from .exceptions import LLMError, LLMProviderError, LLMStreamInterruptedError, LLMTimeoutError
from .ledger.writes import Billing
from .log import log_event
from .pricing import Price, TokenUsage, token_usage
from .redact import exception_chain as cause_chain
from .tokens import estimate_prompt_tokens, estimate_text_tokens

if TYPE_CHECKING:
    from .flow import Outcome, Request
    from .provider_config import ProviderConfig

__all__ = [
    "Charge",
    "read_outcome",
    "settlement",
    "answer_charge",
    "billing",
    "completion_bound",
    "empty_answer_error",
    "finish_answer",
    "failure_charge",
    "prompt_bound",
    "streamed_charge",
    "worst_case",
]

FRAMING_TOKENS = 4096  # room for what no text shows: the vendor's framing, an expanded schema
MEDIA_TOKENS = 4096  # room for one image, audio or file part (vendors bill them by size)
COMPLETION_SLACK = 256


@dataclass(frozen=True)
class Charge:
    """The token counts an attempt is charged; ``estimated``: not the provider's own figures."""

    prompt_tokens: int
    completion_tokens: int
    estimated: bool = False
    why: str = ""  # what was estimated or clamped, for the log
    cache_read_tokens: int = 0  # of prompt_tokens, read from the provider's prompt cache
    cache_write_tokens: int = 0  # of prompt_tokens, written to it
    reasoning_tokens: int = 0  # of completion_tokens
    clamped: bool = False  # the provider reported counts that could not be true

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def billed(self) -> TokenUsage:
        """These counts split the way a price applies to them."""
        cached = self.cache_read_tokens + self.cache_write_tokens
        return TokenUsage(
            input_tokens=self.prompt_tokens - cached,
            cache_read_tokens=self.cache_read_tokens,
            cache_write_tokens=self.cache_write_tokens,
            output_tokens=self.completion_tokens,
            reasoning_tokens=self.reasoning_tokens,
        )


def read_outcome(
    outcome: Outcome, request: Request, provider: ProviderConfig
) -> tuple[dict[str, Any] | None, LLMError | None, Charge | None]:
    """An attempt's result: the answer to serve or the error, and the charge (None: free)."""
    if outcome.error is None:
        response = outcome.response or {}
        charge = answer_charge(response, request, provider.name)
        error = empty_answer_error(response, provider.name)
        return (None, error, charge) if error else (response, None, charge)
    error = classify(outcome.error, provider.name, secrets=[provider.secret_key()])
    if error is not outcome.error:
        error.__cause__ = outcome.error
    return None, error, failure_charge(error, request)


def settlement(
    price: Price,
    outcome: str,
    charge: Charge | None,
    elapsed_ms: float,
    error_class: str | None = None,
) -> dict[str, Any]:
    """The ledger settlement of an attempt charged ``charge`` (None: nothing)."""
    charge = charge or Charge(0, 0)
    billed = charge.billed()
    return {
        "outcome": outcome,
        "cost_usd": price.cost(billed),
        "prompt_tokens": charge.prompt_tokens,
        "completion_tokens": charge.completion_tokens,
        "latency_ms": elapsed_ms,
        "error_class": error_class,
        "estimated": charge.estimated,
        "billing": billing(price, charge, billed),
    }


def billing(price: Price, charge: Charge, billed: TokenUsage | None = None) -> Billing:
    """What the ledger row records of ``charge`` at ``price``: the split, the unit prices
    used (a cache part the price lacks is the input price) and where they came from.
    ``billed``: ``charge.billed()``, when the caller has it already."""
    billed = billed or charge.billed()
    return Billing(
        input_tokens=billed.input_tokens,
        cache_read_tokens=billed.cache_read_tokens,
        cache_write_tokens=billed.cache_write_tokens,
        output_tokens=billed.output_tokens,
        reasoning_tokens=billed.reasoning_tokens,
        input_cost_per_token=price.input,
        output_cost_per_token=price.output,
        cache_read_cost_per_token=price.input if price.cache_read is None else price.cache_read,
        cache_write_cost_per_token=price.input if price.cache_write is None else price.cache_write,
        price_source=str(price.source),
        usage_clamped=charge.clamped,
        note=charge.why or None,
    )


def finish_answer(
    request: Request,
    provider: ProviderConfig,
    response: dict[str, Any],
    charge: Charge,
    price: Price,
    elapsed_ms: float,
) -> None:
    """``response`` as the client returns it: its charged usage and cost, and our keys.

    The usage keeps the vendor's detail fields, in OpenAI's shape; its counts are the
    charged ones (the row's), clamped ones included.
    """
    reported = response.get("usage")
    usage = dict(reported) if isinstance(reported, dict) else {}
    usage.update(
        prompt_tokens=charge.prompt_tokens,
        completion_tokens=charge.completion_tokens,
        total_tokens=charge.total_tokens,
    )
    for details, counts in (
        (
            "prompt_tokens_details",
            {
                "cached_tokens": charge.cache_read_tokens,
                "cache_write_tokens": charge.cache_write_tokens,
            },
        ),
        ("completion_tokens_details", {"reasoning_tokens": charge.reasoning_tokens}),
    ):
        given = usage.get(details)
        given = dict(given) if isinstance(given, dict) else {}
        given.update({k: v for k, v in counts.items() if v or k in given})
        if given:
            usage[details] = given
    response["usage"] = usage
    response["provider"] = provider.name
    response["cost"] = price.cost(charge.billed())
    response["cached"] = False
    response["latency_ms"] = round(elapsed_ms, 3)
    response["request_id"] = request.request_id


def prompt_bound(request: Request) -> int:
    """The most prompt tokens ``request`` could be billed.

    No tokenizer makes more than one token of a character (of a UTF-8 byte, for the
    byte-level ones), and the estimate counts at least one token per four characters:
    four times the estimate of what is sent is a bound, before framing and media.
    """
    params = {k: v for k, v in request.params.items() if k != "max_tokens"}
    sent = request.prompt_tokens or estimate_prompt_tokens(request.messages)
    sent += estimate_text_tokens(json.dumps(params, ensure_ascii=False, default=str))
    return 4 * sent + FRAMING_TOKENS + MEDIA_TOKENS * _media_parts(request.messages)


def completion_bound(request: Request) -> int:
    """The most completion tokens ``request`` could be billed (``max_tokens`` per choice)."""
    choices = request.params.get("n")
    choices = choices if type(choices) is int and choices > 0 else 1
    return choices * (2 * request.max_tokens + COMPLETION_SLACK)


def worst_case(request: Request, why: str) -> Charge:
    """What was reserved for ``request``: its prompt estimate and the whole ``max_tokens``."""
    prompt = request.prompt_tokens or estimate_prompt_tokens(request.messages)
    return Charge(prompt, request.max_tokens, estimated=True, why=why)


def answer_charge(response: Mapping[str, Any], request: Request, provider: str) -> Charge:
    """What an answer is charged: its usage, with each count checked against its bounds."""
    usage = response.get("usage")
    usage = usage if isinstance(usage, Mapping) else {}
    text = _answer_tokens(response.get("choices"))
    notes: list[str] = []
    impossible: list[str] = []  # counts reported that could not be true
    prompt = _checked(
        "prompt_tokens",
        usage.get("prompt_tokens"),
        lowest=1,
        highest=prompt_bound(request),
        estimate=request.prompt_tokens or estimate_prompt_tokens(request.messages),
        notes=notes,
        impossible=impossible,
    )
    completion = _checked(
        "completion_tokens",
        usage.get("completion_tokens"),
        lowest=1 if text else 0,
        highest=completion_bound(request),
        estimate=text,
        notes=notes,
        impossible=impossible,
    )
    # The cache and reasoning counts, within the charged ones (impossible ones clamped).
    split = token_usage({**usage, "prompt_tokens": prompt, "completion_tokens": completion})
    notes += split.clamped
    impossible += split.clamped
    charge = Charge(
        prompt,
        completion,
        estimated=bool(notes),
        why="; ".join(notes),
        cache_read_tokens=split.cache_read_tokens,
        cache_write_tokens=split.cache_write_tokens,
        reasoning_tokens=split.reasoning_tokens,
        clamped=bool(impossible),
    )
    if charge.estimated:
        log_event(
            logging.WARNING,
            f"llm usage from {provider} not trusted ({charge.why}): charged"
            f" {charge.prompt_tokens}+{charge.completion_tokens} tokens, marked estimated",
        )
    return charge


def failure_charge(error: LLMError, request: Request) -> Charge | None:
    """What a failed attempt is charged: None (nothing) unless it may have been billed.

    A timeout after the request was sent is: the provider may have answered (and billed)
    after the client stopped waiting. A timeout while connecting is not. So is an answer
    the provider sent with a success status but this process could not read.
    """
    if isinstance(error, LLMStreamInterruptedError):
        return streamed_charge(error, request)
    if isinstance(error, LLMTimeoutError) and not _connect_timeout(error):
        return worst_case(request, "timed out waiting for the answer")
    if error.metadata.get("answered"):  # a success status, then an answer we could not read
        return worst_case(request, "answered, but the answer could not be read")
    return None


def streamed_charge(error: LLMStreamInterruptedError, request: Request) -> Charge:
    """What a stream cut (or left) after its first text is charged: the counts the provider
    reported before the cut, the rest estimated (the completion from the text received);
    ``error.usage`` becomes that charge, with ``estimated``."""
    message = {"content": error.partial_text, "tool_calls": error.tool_calls or None}
    partial = {"choices": [{"message": message}], "usage": error.usage}
    charge = answer_charge(partial, request, error.provider or "")
    if "completion_tokens" not in error.usage:  # never reported: always an estimate
        charge = replace(charge, estimated=True)
    error.usage = {
        "prompt_tokens": charge.prompt_tokens,
        "completion_tokens": charge.completion_tokens,
        "total_tokens": charge.total_tokens,
        "estimated": charge.estimated,
    }
    return charge


def empty_answer_error(response: Mapping[str, Any], provider: str) -> LLMError | None:
    """The error for an empty answer (None for a real one).

    Empty: no choice at all (``"choices": []``), or none with text, a tool call or a
    refusal in it (Anthropic's ``"content": []``). Such an answer reached the provider,
    so it is charged; it is not served or cached, and the next provider is asked instead
    (the same one, asked again, tends to repeat it). Stopped by the content filter, it
    is an LLMContentPolicyError (:func:`~.classify.content_filter_refusal`).
    """
    choices = response.get("choices")
    if _answer_tokens(choices) > 0:
        return None
    what = "any choices" if not choices else "any text or tool call"
    return content_filter_refusal(choices, provider) or LLMProviderError(
        f"{provider}: answered without {what} (an empty answer)",
        provider=provider,
        metadata={"empty_answer": True},
    )


def _checked(
    name: str,
    reported: Any,
    *,
    lowest: int,
    highest: int,
    estimate: int,
    notes: list[str],
    impossible: list[str],
) -> int:
    """``reported`` when it is a count within [lowest, highest]; otherwise the charge to make.

    A count left out (or 0, as LiteLLM reports one left out) is estimated; one given
    that cannot be true is also named in ``impossible`` (the row marks it clamped).
    """
    count = reported if type(reported) is int else None
    if count is None or count < lowest:
        value = min(max(estimate, lowest), highest)
        notes.append(f"{name} {_shown(reported)} estimated as {value}")
        if reported is not None and reported != 0:
            impossible.append(name)
        return value
    if count > highest:
        notes.append(f"{name} {_shown(reported)} clamped to {highest}")
        impossible.append(name)
        return highest
    return count


def _shown(value: Any) -> str:
    """A reported count as the note shows it: a number, or only the type of anything
    else (the note is logged and kept on the ledger row: no text from the answer)."""
    if value is None:
        return "missing"
    if not isinstance(value, int | float):
        return f"(a {type(value).__name__})"
    text = repr(value)
    return text if len(text) <= 24 else text[:21] + "..."


def _answer_tokens(choices: Any) -> int:
    """Estimated tokens of the answer's text and tool calls, over every choice."""
    total = 0
    for choice in choices if isinstance(choices, list) else ():
        message = choice.get("message") if isinstance(choice, Mapping) else None
        if not isinstance(message, Mapping):
            continue
        for key in ("content", "tool_calls", "function_call", "refusal"):
            value = message.get(key)
            if isinstance(value, str):
                total += estimate_text_tokens(value)
            elif value:
                total += estimate_text_tokens(json.dumps(value, default=str))
    return total


def _media_parts(messages: list[dict[str, Any]]) -> int:
    return sum(
        1
        for message in messages
        if isinstance(message.get("content"), list)
        for part in message["content"]
        if isinstance(part, Mapping) and part.get("type") != "text"
    )


def _connect_timeout(error: BaseException) -> bool:
    """True when a connect or pool timeout (nothing was sent) is in the cause chain."""
    before_sending = tuple(
        getattr(module, name)
        for module in (sys.modules.get("httpx"), sys.modules.get("httpcore"))
        if module is not None
        for name in ("ConnectTimeout", "PoolTimeout")
    )
    return any(isinstance(link, before_sending) for link in cause_chain(error))
