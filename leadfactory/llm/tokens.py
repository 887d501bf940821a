"""A quick prompt-token estimate for the hot path, with no tokenizer to load.

Budgets and token-per-minute limits are checked before a call, on an estimate; the
provider's reported usage replaces it afterwards (the ledger settles the real cost,
the rate limiter corrects its window). Loading a tokenizer for that estimate would
cost 0.3-0.7 s on the first call and tens of MiB for the life of the process, so the
estimate is arithmetic on the text: about four ASCII characters per token (English
prose and code come out within some 10-30 % of cl100k), and one token per non-ASCII
character, which errs high for accented Latin text and matches CJK scripts. An image
part counts as ``IMAGE_TOKENS`` whatever its URL's length (a base64 data URL is not
sent as text: vendors bill an image by its pixels, some hundreds to ~1,600 tokens).
``LLMClient._estimate_tokens`` uses LiteLLM's tokenizer instead, when asked.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["estimate_prompt_tokens", "estimate_text_tokens"]

_PER_MESSAGE = 4  # role and framing tokens around each message (OpenAI's chat format)
_REPLY_PRIMING = 3  # tokens that open the assistant's reply
IMAGE_TOKENS = 1600  # about the most one image costs (Anthropic's 1092x1092, OpenAI's high detail)


def estimate_text_tokens(text: str) -> int:
    """Tokens of ``text``: ceil(ASCII characters / 4) plus one per other character."""
    if text.isascii():
        return (len(text) + 3) // 4
    ascii_count = len(text.encode("ascii", "ignore"))
    return (ascii_count + 3) // 4 + len(text) - ascii_count


def _value_tokens(value: Any) -> int:
    if isinstance(value, str):
        return estimate_text_tokens(value)
    if value is None:
        return 0
    if isinstance(value, list):  # content parts: text as text, an image at a flat rate
        return sum(
            IMAGE_TOKENS
            if isinstance(part, dict) and part.get("type") == "image_url"
            else _value_tokens(part)
            for part in value
        )
    # content parts, tool calls, names...: their JSON text is close to what is sent
    return estimate_text_tokens(json.dumps(value, ensure_ascii=False, default=str))


def estimate_prompt_tokens(messages: Iterable[Mapping[str, Any]]) -> int:
    """Estimated prompt tokens of validated chat ``messages``."""
    total = _REPLY_PRIMING
    for message in messages:
        total += _PER_MESSAGE + sum(_value_tokens(v) for v in message.values())
    return total
