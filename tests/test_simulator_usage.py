"""The simulator's scripted usage (simulator/usage.py): each vendor's shape, over HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from leadfactory.llm.simulator import Fault, Simulator, Usage

DETAILED = Usage(2000, 500, cached_tokens=1200, cache_write_tokens=300, reasoning_tokens=200)
CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with Simulator() as simulator:
        yield simulator


@pytest.fixture(autouse=True)
def fresh(sim):
    sim.clear_faults()
    yield
    sim.clear_faults()


def post(sim: Simulator, provider: str, path: str, body: dict) -> dict:
    response = httpx.post(sim.base_url(provider).removesuffix("/v1") + path, json=body)
    assert response.status_code == 200, response.text
    return response.json()


def openai_usage(sim: Simulator) -> dict:
    return post(sim, "openai", "/v1/chat/completions", CHAT)["usage"]


def test_openai_reports_cached_and_reasoning_tokens_in_its_details(sim):
    sim.set_usage("openai", DETAILED)
    usage = openai_usage(sim)
    assert (usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"]) == (
        2000,
        500,
        2500,
    )
    assert usage["prompt_tokens_details"] == {"cached_tokens": 1200, "audio_tokens": 0}
    assert usage["completion_tokens_details"]["reasoning_tokens"] == 200
    assert "cache_write_tokens" not in str(usage)  # OpenAI reports no cache writes


def test_anthropic_reports_cache_reads_and_writes_apart_from_its_input_tokens(sim):
    sim.set_usage("anthropic", DETAILED)
    body = {**CHAT, "model": "claude"}
    usage = post(sim, "anthropic", "/v1/messages", body)["usage"]
    assert usage == {
        "input_tokens": 2000 - 1200 - 300,  # the uncached ones only
        "cache_creation_input_tokens": 300,
        "cache_read_input_tokens": 1200,
        "output_tokens": 500,  # reasoning within it, not reported apart
    }


def test_ollama_reports_its_counts_on_both_apis(sim):
    sim.set_usage("ollama", DETAILED, times=2)
    native = post(sim, "ollama", "/api/chat", {**CHAT, "stream": False})
    assert (native["prompt_eval_count"], native["eval_count"]) == (2000, 500)
    compatible = post(sim, "ollama", "/v1/chat/completions", CHAT)["usage"]
    assert compatible == {"prompt_tokens": 2000, "completion_tokens": 500, "total_tokens": 2500}
    native = post(sim, "ollama", "/api/chat", {**CHAT, "stream": False})
    assert native["eval_count"] != 500  # two answers scripted, then its own count again


def test_a_sequence_scripts_one_answer_each_and_errors_leave_it(sim):
    sim.set_usage("openai", [Usage(10, 1), Usage(20, 2)])
    sim.set_fault("openai", Fault.RATE_LIMIT, times=1)
    assert httpx.post(sim.base_url("openai") + "/chat/completions", json=CHAT).status_code == 429
    assert openai_usage(sim)["prompt_tokens"] == 10  # the error took nothing
    assert openai_usage(sim)["prompt_tokens"] == 20
    assert openai_usage(sim)["prompt_tokens"] == 4  # its own count: "hi" and framing


def test_impossible_usage_is_reported_as_scripted(sim):
    sim.set_usage("openai", Usage(100, 5, cached_tokens=150))
    assert openai_usage(sim)["prompt_tokens_details"]["cached_tokens"] == 150
    sim.set_usage("anthropic", Usage(100, 5, cached_tokens=150))
    usage = post(sim, "anthropic", "/v1/messages", CHAT)["usage"]
    assert usage["input_tokens"] == -50


def test_a_usage_fault_spoils_the_scripted_usage_too(sim):
    sim.set_usage("openai", DETAILED)
    sim.set_fault("openai", Fault.NEGATIVE_USAGE, times=1)
    assert openai_usage(sim)["completion_tokens"] == -5
    assert openai_usage(sim)["completion_tokens"] == 500


def test_clearing(sim):
    sim.set_usage("openai", DETAILED)
    sim.set_usage("openai", None)
    assert openai_usage(sim)["prompt_tokens"] == 4
    sim.set_usage("openai", DETAILED)
    sim.clear_faults()
    assert openai_usage(sim)["prompt_tokens"] == 4


def test_bad_scripts_are_refused(sim):
    with pytest.raises(ValueError, match="times"):
        sim.set_usage("openai", DETAILED, times=0)
    with pytest.raises(ValueError, match="one per answer"):
        sim.set_usage("openai", [DETAILED], times=2)
    with pytest.raises(TypeError, match="Usage"):
        sim.set_usage("openai", [{"prompt_tokens": 1}])  # type: ignore[list-item]
