"""The key never survives in an error's cause chain: redact_chain() scrubs the texts of
every linked exception (args, message, body, the HTTP request's headers, the response's
text) and keeps their types and status codes. Built from the real openai/LiteLLM/httpx
exception classes, no network; tests/test_secrets.py checks the same through the
simulator with a provider that echoes the request's headers."""

from __future__ import annotations

import traceback

import httpx
import openai

from leadfactory.llm import LLMValidationError
from leadfactory.llm.classify import classify
from leadfactory.llm.redact import REDACTED, redact, redact_chain

from .conftest import SENTINEL_KEY
from .test_classify import litellm_exceptions

ECHO = f"Bad header: Authorization: Bearer {SENTINEL_KEY}"


def echoed_400() -> BaseException:
    """A 400 whose body quotes the Authorization header, as LiteLLM raises it: LiteLLM's
    BadRequestError from the SDK's BadRequestError, which holds the request and response."""
    request = httpx.Request(
        "POST",
        "https://api.example.com/v1/chat/completions",
        headers={"Authorization": f"Bearer {SENTINEL_KEY}", "x-api-key": SENTINEL_KEY},
    )
    body = {"error": {"message": ECHO, "type": "invalid_request_error", "code": None}}
    response = httpx.Response(400, request=request, json=body)
    response.read()
    try:
        try:
            raise openai.BadRequestError(ECHO, response=response, body=body)
        except openai.BadRequestError as sdk:
            raise litellm_exceptions().BadRequestError(
                message=f"OpenAIException - {ECHO}",
                llm_provider="openai",
                model="gpt-4",
                response=response,
            ) from sdk
    except Exception as outer:
        return outer


def everything_printable(error: BaseException) -> str:
    """A traceback, and what a curious user reads off each link of the chain."""
    parts = ["".join(traceback.format_exception(error))]
    link: BaseException | None = error
    while link is not None:
        parts += [repr(link), str(link), repr(link.args), repr(vars(link))]
        for holder in (link, getattr(link, "response", None)):
            request = getattr(holder, "request", None)
            if isinstance(request, httpx.Request):
                parts.append(repr(list(request.headers.multi_items())))
        response = getattr(link, "response", None)
        if isinstance(response, httpx.Response):
            parts += [response.text, repr(response.content)]
        link = link.__cause__ or link.__context__
    return "\n".join(parts)


def test_the_chain_is_redacted_and_keeps_types_and_status_codes():
    foreign = echoed_400()
    assert SENTINEL_KEY in everything_printable(foreign)  # the leak this test is about
    error = classify(foreign, "openai", secrets=[SENTINEL_KEY])
    error.__cause__ = foreign
    shown = everything_printable(error)
    assert SENTINEL_KEY not in shown and REDACTED in shown
    assert isinstance(error, LLMValidationError) and error.status_code == 400
    sdk = foreign.__cause__
    assert type(sdk) is openai.BadRequestError and sdk.status_code == 400
    assert sdk.body["error"]["type"] == "invalid_request_error"
    assert sdk.response.status_code == 400 and sdk.response.json()["error"]["message"]
    assert foreign.status_code == 400


def test_context_links_are_redacted_too():
    try:
        try:
            raise ValueError(f"key {SENTINEL_KEY}")
        except ValueError:
            raise RuntimeError("while handling it") from None  # context kept, not shown
    except RuntimeError as error:
        outer = error
    try:
        try:
            raise KeyError(SENTINEL_KEY)
        except KeyError:
            raise RuntimeError("second")  # noqa: B904 - the implicit context is the point
    except RuntimeError as error:
        implicit = error
    for error in (outer, implicit):
        redact_chain(error, [SENTINEL_KEY])
        assert SENTINEL_KEY not in repr(error.__context__.args)


def test_redact_leaves_short_or_missing_secrets_alone():
    assert redact("a b c", ["", None, "b"]) == "a b c"
    assert redact(f"x{SENTINEL_KEY}y", [SENTINEL_KEY]) == f"x{REDACTED}y"
    error = ValueError("nothing secret")
    redact_chain(error, [None])
    assert error.args == ("nothing secret",)


def test_url_passwords_are_redacted_without_being_named():
    text = "for url 'http://pipeline:pa55word@127.0.0.1:8080/v1' and redis://:pw@h:6379/0"
    assert redact(text, []) == (
        f"for url 'http://pipeline:{REDACTED}@127.0.0.1:8080/v1' and redis://:{REDACTED}@h:6379/0"
    )
    assert (
        redact("https://host/v1 and user@example.com", []) == "https://host/v1 and user@example.com"
    )
