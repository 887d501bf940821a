"""A provider's ``timeout`` bounds the whole attempt, not each read.

The simulator's TRICKLE fault sends the answer's headers at once and then its body one
byte every 0.2 s: every read returns long within the timeout, so a per-read timeout
never fires and the answer would take over a minute. The attempt must end at its
timeout, as a timeout, in both clients and on every wire protocol.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from leadfactory.llm import LLMClient, LLMConfig, LLMTimeoutError
from leadfactory.llm.simulator import Fault

from .test_client_e2e import PROTOCOLS, USER

TRICKLE_EVERY = 0.2  # seconds per byte: an answer of ~300 bytes takes ~60 s
TIMEOUT = 1.0


def trickling(sim, protocol: str) -> LLMClient:
    sim.set_fault(protocol, Fault.TRICKLE, delay=TRICKLE_EVERY)
    config = LLMConfig(fallback_strategy="fail_fast", enable_caching=False)
    for name in list(config.providers):
        if name != protocol:
            del config.providers[name]
    provider = config.providers[protocol]
    provider.timeout, provider.max_retries = TIMEOUT, 0
    return LLMClient(config)


def check_timed_out(sim, client: LLMClient, protocol: str, call) -> None:
    started = time.monotonic()
    with pytest.raises(LLMTimeoutError) as caught:
        call()
    # The bound is the trickle's own length, not the timeout: no timing assertion.
    assert time.monotonic() - started < 300 * TRICKLE_EVERY / 3
    assert caught.value.provider == protocol
    assert sim.request_count(protocol) == 1  # the request was sent, then cut off
    [row] = client.ledger.rows()
    assert (row["outcome"], row["error_class"]) == ("error", "LLMTimeoutError")


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_trickled_answer_times_out_at_the_timeout(sim_env, protocol):
    client = trickling(sim_env, protocol)
    check_timed_out(sim_env, client, protocol, lambda: client.chat_completion(USER, max_tokens=50))


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_trickled_answer_times_out_at_the_timeout_async(sim_env, protocol):
    client = trickling(sim_env, protocol)

    def call() -> None:
        asyncio.run(client.achat_completion(USER, max_tokens=50))

    check_timed_out(sim_env, client, protocol, call)


def test_a_trickled_answer_within_the_timeout_is_read_whole(sim_env):
    """The deadline cuts only what outlasts it: a short trickle inside it is answered."""
    client = trickling(sim_env, "openai")
    sim_env.set_fault("openai", Fault.TRICKLE, delay=0.001)
    client.config.providers["openai"].timeout = 30
    response = client.chat_completion(USER, max_tokens=50)
    assert "France" in response["choices"][0]["message"]["content"]
