"""What each vendor really answers when it refuses a prompt: too long, or against policy.

The faults ``Fault.CONTEXT_LENGTH`` and ``Fault.CONTENT_POLICY`` answer with these
bodies, copied from each vendor's API (HTTP 400 all):

- OpenAI: ``code`` ``context_length_exceeded`` (with the window and the prompt's size in
  the message), or ``content_policy_violation``;
- Anthropic: an ``invalid_request_error`` whose only mark is its message (``prompt is
  too long: N tokens > M maximum``; ``Output blocked by content filtering policy``);
- Ollama: ``{"error": "the input length exceeds the context length"}`` (in OpenAI's
  shape, with no code, on its ``/v1`` routes). Ollama has no content policy: there the
  fault answers a plain 400.

``Fault.POLICY_STOP`` is the other way a vendor refuses: a 200 answer that its content
filter stopped before any text (:func:`policy_stop`).

Pure functions: nothing here touches a socket.
"""

from __future__ import annotations

from typing import Any

from .faults import IRE, Fault, Response, vendor_error

__all__ = ["REFUSALS", "policy_stop", "refusal_response"]

REFUSALS = frozenset({Fault.CONTEXT_LENGTH, Fault.CONTENT_POLICY})

WINDOW = 8192  # the context window the messages quote


def _prompt_tokens(body: Any) -> int:
    """Rough prompt size of a request body (words), at least one past the window."""
    words = len(str(body.get("messages", "")).split()) if isinstance(body, dict) else 0
    return max(WINDOW + 1, words)


def refusal_response(protocol: str, fault: Fault, body: Any, shape: str) -> Response:
    """The vendor's 400 for ``fault``; ``shape`` is the body's wire format (Ollama's
    ``/v1`` routes answer in OpenAI's)."""
    tokens = _prompt_tokens(body)
    if protocol == "openai":
        if fault is Fault.CONTEXT_LENGTH:
            message = (
                f"This model's maximum context length is {WINDOW} tokens. However, your "
                f"messages resulted in {tokens} tokens. Please reduce the length of the "
                "messages."
            )
            return vendor_error("openai", 400, message, IRE, "context_length_exceeded")
        message = (
            "Your request was rejected as a result of our safety system. Your prompt may "
            "contain text that is not allowed by our safety system."
        )
        return vendor_error("openai", 400, message, IRE, "content_policy_violation")
    if protocol == "anthropic":
        if fault is Fault.CONTEXT_LENGTH:
            message = f"prompt is too long: {tokens} tokens > {WINDOW} maximum"
        else:
            message = "Output blocked by content filtering policy"
        return vendor_error("anthropic", 400, message, IRE, None)
    if fault is Fault.CONTEXT_LENGTH:
        message = "the input length exceeds the context length"
    else:
        message = "invalid request"  # Ollama refuses nothing on policy grounds
    return vendor_error(shape, 400, message, IRE, None)


def policy_stop(shape: str, answer: dict[str, Any]) -> dict[str, Any]:
    """``answer`` (a 200 JSON answer in ``shape``) stopped by the vendor's content filter
    before any text (``Fault.POLICY_STOP``): OpenAI's ``finish_reason``
    ``content_filter`` with no content, Anthropic's ``stop_reason`` ``refusal`` with
    no content blocks. Ollama's ``/v1`` routes answer in OpenAI's shape, so as OpenAI;
    its native API is left as it is (Ollama filters nothing)."""
    if shape == "openai":
        message = {"role": "assistant", "content": None, "refusal": None}
        choice = {"index": 0, "message": message, "logprobs": None}
        return {**answer, "choices": [{**choice, "finish_reason": "content_filter"}]}
    if shape == "anthropic":
        return {**answer, "content": [], "stop_reason": "refusal"}
    return answer
