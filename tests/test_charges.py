"""What an attempt is charged (leadfactory.llm.charges), alone: no simulator, no LiteLLM."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from leadfactory.llm.charges import (
    answer_charge,
    completion_bound,
    empty_answer_error,
    failure_charge,
    finish_answer,
    prompt_bound,
    settlement,
)
from leadfactory.llm.exceptions import LLMProviderError, LLMTimeoutError
from leadfactory.llm.flow import Call, Outcome, Request, fallback_flow
from leadfactory.llm.ledger import Release, Reservation, Reserve, Settle
from leadfactory.llm.pricing import price_for
from leadfactory.llm.provider_config import ProviderConfig
from leadfactory.llm.tokens import estimate_prompt_tokens, estimate_text_tokens

MESSAGES = [{"role": "user", "content": "Name the capital of France, in one word."}]
REQUEST = Request(
    request_id="r",
    messages=MESSAGES,
    params={"temperature": 0, "max_tokens": 10},
    max_tokens=10,
    prompt_tokens=estimate_prompt_tokens(MESSAGES),
)
PROMPT = REQUEST.prompt_tokens
TEXT = "Paris, the capital."


def answer(usage: dict | None, text: str = TEXT) -> dict:
    body: dict = {"choices": [{"message": {"role": "assistant", "content": text}}]}
    if usage is not None:
        body["usage"] = usage
    return body


def usage(prompt, completion) -> dict:
    return {"prompt_tokens": prompt, "completion_tokens": completion}


def test_the_bounds():
    assert completion_bound(REQUEST) == 2 * 10 + 256
    two = Request("r", MESSAGES, {"max_tokens": 10, "n": 2}, 10, PROMPT)
    assert completion_bound(two) == 2 * completion_bound(REQUEST)
    params = estimate_text_tokens('{"temperature": 0}')
    assert prompt_bound(REQUEST) == 4 * (PROMPT + params) + 4096
    image = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]
    with_image = Request("r", image, {"max_tokens": 10}, 10)
    assert prompt_bound(with_image) >= 2 * 4096


@pytest.mark.parametrize(
    ("reported", "charged", "estimated", "clamped"),
    [
        (usage(12, 5), (12, 5), False, False),  # believable: as reported
        (None, (PROMPT, estimate_text_tokens(TEXT)), True, False),  # no usage at all
        (usage(0, 0), (PROMPT, estimate_text_tokens(TEXT)), True, False),  # LiteLLM's zeros
        (usage(12, -5), (12, estimate_text_tokens(TEXT)), True, True),  # negative: estimated
        (usage(-1, 5), (PROMPT, 5), True, True),
        (usage(12, 10**30), (12, 276), True, True),  # huge: clamped to the bound
        (usage(12, 2 * 10**12), (12, 276), True, True),
        (usage(10**9, 5), (prompt_bound(REQUEST), 5), True, True),
        (usage(12, 7.5), (12, estimate_text_tokens(TEXT)), True, True),  # not a whole number
        (usage(12, True), (12, estimate_text_tokens(TEXT)), True, True),
        # more cached than prompt tokens: clamped to the prompt
        ({**usage(12, 5), "prompt_tokens_details": {"cached_tokens": 20}}, (12, 5), True, True),
    ],
)
def test_usage_is_charged_within_bounds(reported, charged, estimated, clamped):
    charge = answer_charge(answer(reported), REQUEST, "openai")
    assert (charge.prompt_tokens, charge.completion_tokens) == charged
    assert charge.estimated is estimated and bool(charge.why) is estimated
    assert charge.clamped is clamped


def test_the_settlement_says_what_was_billed_and_why():
    reported = {
        **usage(12, 5),
        "prompt_tokens_details": {"cached_tokens": 20},  # impossible: clamped to 12
        "completion_tokens_details": {"reasoning_tokens": 3},
    }
    charge = answer_charge(answer(reported), REQUEST, "openai")
    price = price_for(ProviderConfig(name="openai", api_key="k", default_model="gpt-4o"))
    written = settlement(price, "success", charge, 12.5)
    billing = written["billing"]
    # gpt-4o's map price: input 2.5e-6, cache read 1.25e-6, output 1e-5; no cache-write
    # part, so cache writes are priced as input
    assert (billing.input_tokens, billing.cache_read_tokens, billing.output_tokens) == (0, 12, 5)
    assert billing.reasoning_tokens == 3
    assert (billing.input_cost_per_token, billing.output_cost_per_token) == (2.5e-6, 1e-5)
    assert (billing.cache_read_cost_per_token, billing.cache_write_cost_per_token) == (
        1.25e-6,
        2.5e-6,
    )
    assert billing.price_source == "litellm_map" and billing.usage_clamped
    assert billing.note == "cached_tokens=20 > prompt_tokens=12: clamped to 12"
    assert abs(written["cost_usd"] - (12 * 1.25e-6 + 5 * 1e-5)) <= 1e-12
    assert written["estimated"]
    response = answer(reported)
    provider = ProviderConfig(name="openai", api_key="k", default_model="gpt-4o")
    finish_answer(REQUEST, provider, response, charge, price, 1.0)
    assert response["usage"]["prompt_tokens_details"] == {"cached_tokens": 12}  # as charged
    assert response["usage"]["completion_tokens_details"] == {"reasoning_tokens": 3}
    assert response["cost"] == written["cost_usd"]


def test_an_empty_answer_may_report_no_completion():
    charge = answer_charge(answer(usage(12, 0), text=""), REQUEST, "openai")
    assert (charge.prompt_tokens, charge.completion_tokens, charge.estimated) == (12, 0, False)


def test_empty_answers():
    assert empty_answer_error(answer(None), "openai") is None
    tool_call = {"choices": [{"message": {"tool_calls": [{"id": "t"}]}}]}
    assert empty_answer_error(tool_call, "openai") is None
    for empty in ({"choices": []}, {}, answer(None, text=""), {"choices": [{"message": None}]}):
        error = empty_answer_error(empty, "openai")
        assert isinstance(error, LLMProviderError) and error.metadata["empty_answer"]
        assert error.provider == "openai" and "empty answer" in str(error)


def timeout_caused_by(cause: BaseException) -> LLMTimeoutError:
    error = LLMTimeoutError("openai: timed out", provider="openai")
    error.__cause__ = cause
    return error


def test_a_timeout_after_sending_is_charged_the_reservation():
    charge = failure_charge(timeout_caused_by(httpx.ReadTimeout("slow")), REQUEST)
    assert charge is not None and charge.estimated
    assert (charge.prompt_tokens, charge.completion_tokens) == (PROMPT, 10)


@pytest.mark.parametrize("cause", [httpx.ConnectTimeout("no"), httpx.PoolTimeout("busy")])
def test_a_timeout_before_sending_is_free(cause):
    assert failure_charge(timeout_caused_by(cause), REQUEST) is None


def test_other_failures_are_free():
    assert failure_charge(LLMProviderError("openai: HTTP 500", provider="openai"), REQUEST) is None


def test_the_answer_keeps_the_usage_details_beside_the_charged_counts():
    details = {"cached_tokens": 4}
    response = answer({**usage(12, 10**30), "prompt_tokens_details": details})
    charge = answer_charge(response, REQUEST, "openai")
    provider = ProviderConfig(name="openai", default_model="gpt-4", api_key="sk-test")
    finish_answer(REQUEST, provider, response, charge, price_for(provider), 1.0)
    assert response["usage"] == {
        "prompt_tokens": 12,
        "completion_tokens": 276,
        "total_tokens": 288,
        "prompt_tokens_details": details,
    }


# -- a flow closed mid-attempt (a cancelled task, Ctrl-C): driven alone -------------------


def closing_flow(until: type, arguments_for=None) -> tuple[Any, list, Any]:
    """A flow driven until it yields an operation of type ``until``; what it writes on close."""
    from tests.flow_script import Script, answer, make_request, services

    script = Script({"openai": [answer()]})
    flow_services = services(script, names=("openai",))
    if arguments_for is not None:
        flow_services.arguments_for = arguments_for
    written: list = []
    flow_services.settle_on_close = written.append
    flow = fallback_flow(flow_services, make_request())
    send = None
    while not isinstance(operation := flow.send(send), until):
        send = script.perform(operation)
    return flow, written, operation


def test_a_flow_closed_mid_call_charges_what_was_reserved():
    from tests.flow_script import MAX_TOKENS, PROMPT_TOKENS

    flow, written, _ = closing_flow(Call)
    flow.close()
    [write] = written
    assert isinstance(write, Settle) and (write.outcome, write.error_class) == (
        "error",
        "Cancelled",
    )
    assert write.estimated and (write.prompt_tokens, write.completion_tokens) == (
        PROMPT_TOKENS,
        MAX_TOKENS,
    )
    assert write.cost_usd == pytest.approx(0.03 * (PROMPT_TOKENS + MAX_TOKENS) / 1000)


def test_a_flow_closed_while_settling_repeats_the_settlement_under_way():
    flow, written, settling = closing_flow(Settle)
    flow.close()
    assert written == [settling] and settling.outcome == "success" and not settling.estimated


def test_a_flow_closed_while_reserving_writes_nothing():
    flow, written, _ = closing_flow(Reserve)
    flow.close()
    assert written == []  # the driver gives back a reservation that lands later


def test_an_attempt_that_fails_before_sending_gives_the_reservation_back():
    def broken(*_: Any, **__: Any) -> dict:
        raise RuntimeError("no arguments")

    flow, written, _ = closing_flow(Reserve, arguments_for=broken)
    with pytest.raises(RuntimeError):
        flow.send(Outcome(value=Reservation(1, "r1", "openai", 0.001)))
    assert [type(w) for w in written] == [Release]


def test_the_note_quotes_no_text_given_as_a_prompt_or_completion_count():
    secretish = "sk-ant-looks-like-a-key-0123456789"
    charge = answer_charge(answer(usage(secretish, 5)), REQUEST, "openai")
    assert charge.estimated and charge.clamped
    assert secretish[:6] not in charge.why and "prompt_tokens (a str) estimated as" in charge.why
