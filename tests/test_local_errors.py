"""Errors raised in this process stay local: refused before anything is spent when a check
can see them, and never counted as the provider's failure when one slips through.

Each case here escaped once: a CR/LF in a header reached the HTTP library, was taken for a
provider 500, retried and put the provider in a cooldown; ``caller={}`` and
``caller=10**30`` failed in SQLite; a ``response_format`` pydantic cannot describe, or an
object with only ``model_json_schema``, failed in LiteLLM; a lone surrogate in the text
failed while encoding the request (and wrote an error row).
"""

from __future__ import annotations

import asyncio

import pydantic
import pytest

from leadfactory.llm import (
    AllProvidersFailedError,
    LLMClient,
    LLMConfig,
    LLMError,
    LLMProviderError,
    validation,
)

from .rejection_checks import PROTOCOLS, USER, assert_rejected_for_free, call_async, call_sync


class Opaque:
    """A type pydantic cannot describe in a JSON schema."""


class Undescribable(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(arbitrary_types_allowed=True)
    thing: Opaque


class Lead(pydantic.BaseModel):
    name: str


class OnlySchema:
    """Looks like a model to a duck-typing check, but LiteLLM cannot use it."""

    def model_json_schema(self) -> dict:
        return {"type": "object"}


SURROGATE = "caf\udce9"  # what bytes.decode(errors="surrogateescape") leaves behind

CASES = [
    ({"extra_headers": {"X-Trace": "a\r\nInjected: yes"}}, "extra_headers.X-Trace", "crlf"),
    ({"extra_headers": {"X-Trace": "a\nb"}}, "extra_headers.X-Trace", "lf"),
    ({"extra_headers": {"X-Trace": "a\x00b"}}, "extra_headers.X-Trace", "nul"),
    ({"extra_headers": {"X-Trace": "café"}}, "extra_headers.X-Trace", "non-ascii-value"),
    ({"extra_headers": {"X Trace": "a"}}, "extra_headers", "space-in-name"),
    ({"extra_headers": {"X-Trace:": "a"}}, "extra_headers", "colon-in-name"),
    ({"extra_headers": {"": "a"}}, "extra_headers", "empty-name"),
    ({"extra_headers": {"X-Trace": 7}}, "extra_headers.X-Trace", "int-value"),
    ({"caller": {}}, "caller", "caller-dict"),
    ({"caller": 10**30}, "caller", "caller-huge-int"),
    ({"caller": b"step"}, "caller", "caller-bytes"),
    ({"caller": SURROGATE}, "caller", "caller-surrogate"),
    ({"response_format": Undescribable}, "response_format", "schema-cannot-be-generated"),
    ({"response_format": OnlySchema()}, "response_format", "only-model-json-schema"),
    ({"response_format": Lead(name="x")}, "response_format", "model-instance"),
    ({"messages": [{"role": "user", "content": SURROGATE}]}, "messages[0].content", "surrogate"),
    (
        {"messages": [{"role": "user", "content": [{"type": "text", "text": SURROGATE}]}]},
        "messages[0].content[0].text",
        "surrogate-in-part",
    ),
    (
        {"messages": [{"role": "user", "content": "x", "name": SURROGATE}]},
        "messages[0].name",
        "surrogate-name",
    ),
    ({"stop": [SURROGATE]}, "stop[0]", "surrogate-in-stop"),
    ({"user": SURROGATE}, "user", "surrogate-in-user"),
]


@pytest.fixture
def client(sim_env):
    client = LLMClient(LLMConfig())
    yield client
    client.close()


@pytest.mark.parametrize(("arguments", "field"), [c[:2] for c in CASES], ids=[c[2] for c in CASES])
def test_refused_before_anything_is_spent(client, sim_env, arguments, field):
    arguments = {"messages": [USER], "model": "openai", **arguments}
    assert_rejected_for_free(call_sync(client, arguments), field, client, sim_env, arguments)


@pytest.mark.parametrize(("arguments", "field"), [c[:2] for c in CASES[:1] + CASES[9:10]])
def test_async_refuses_them_too(client, sim_env, arguments, field):
    arguments = {"messages": [USER], "model": "openai", **arguments}
    assert_rejected_for_free(call_async(client, arguments), field, client, sim_env, arguments)


def test_good_values_still_pass():
    validation.check_parameters(
        0.5, 10, {"extra_headers": {"X-Trace-Id": "abc 123\t=;,/"}, "response_format": Lead}
    )
    assert validation.check_caller("résumé step") == "résumé step"
    assert validation.check_messages([{"role": "user", "content": "naïve café 🙂"}])


def provider_error(error: LLMError, provider: str) -> LLMError:
    """The provider's own error: a pinned call raises it, a fallback walk wraps it."""
    if isinstance(error, AllProvidersFailedError):
        return error.provider_errors[provider]
    return error


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_header_the_http_library_refuses_is_local(sim_env, monkeypatch, protocol):
    """Past the checks (switched off here), the HTTP library refuses the CR/LF itself:
    that is not the provider's failure: one attempt, no retry, no cooldown."""
    monkeypatch.setitem(validation.PARAMETER_CHECKS, "extra_headers", lambda field, value: None)
    monkeypatch.setenv(f"{protocol.upper()}_MAX_RETRIES", "3")
    monkeypatch.setenv("LLM_COOLDOWN_FAILURES", "1")
    with LLMClient(LLMConfig()) as client:
        for _ in range(2):
            with pytest.raises(LLMError) as raised:
                client.chat_completion(
                    [USER], model=protocol, cache=False, extra_headers={"X-Trace": "a\r\nb"}
                )
            error = provider_error(raised.value, protocol)
            assert type(error) is LLMProviderError and error.status_code is None
            assert "LocalProtocolError" in error.metadata["local_error"]
            assert "not at the provider" in str(error)
        # Two calls, one attempt each (no retries); the provider is still available.
        assert len(client.ledger.rows()) == 2
        assert client.get_provider_status()[protocol]["available"] is True
    assert sim_env.request_count(protocol) == 0


def test_async_header_refused_by_the_http_library_is_local(sim_env, monkeypatch):
    monkeypatch.setitem(validation.PARAMETER_CHECKS, "extra_headers", lambda field, value: None)
    monkeypatch.setenv("LLM_COOLDOWN_FAILURES", "1")
    with LLMClient(LLMConfig()) as client:
        with pytest.raises(LLMError) as raised:
            asyncio.run(
                client.achat_completion(
                    [USER], model="openai", cache=False, extra_headers={"X-Trace": "a\r\nb"}
                )
            )
        assert provider_error(raised.value, "openai").metadata.get("local_error")
        assert len(client.ledger.rows()) == 1
        assert client.get_provider_status()["openai"]["available"] is True
