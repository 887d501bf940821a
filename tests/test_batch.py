"""LLMClient.map / amap / as_completed: order, ids, bad items, resume, stops, progress.

Through the simulator (real HTTP, LiteLLM's real code) unless a test only needs the
batch's own bookkeeping; the acceptance runs of issue 18 (1,000 items, a kill, a
budget) are in tests/test_batch_e2e.py, the command in tests/test_cli_batch.py.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time

import pytest

from leadfactory.llm import LLMClient, LLMConfig, LLMError, LLMValidationError
from leadfactory.llm.batch import BatchResults, LLMBatchNotRunError
from leadfactory.llm.batch.items import prepare_items
from leadfactory.llm.simulator import Fault


def free_only() -> LLMConfig:
    """Ollama alone (free), no cache: each item is one request to the simulator."""
    config = LLMConfig(enable_caching=False)
    for name in [n for n in config.providers if n != "ollama"]:
        del config.providers[name]
    return config


def paid_only() -> LLMConfig:
    config = LLMConfig(enable_caching=False)
    for name in [n for n in config.providers if n != "openai"]:
        del config.providers[name]
    return config


def prompts(n: int, prefix: str = "item") -> list[dict]:
    return [{"id": f"{prefix}-{i}", "prompt": f"{prefix} {i}", "max_tokens": 20} for i in range(n)]


def test_results_come_back_in_input_order_with_ids(sim_env):
    requests = [*prompts(12), [{"role": "user", "content": "bare list"}]]
    with LLMClient(free_only()) as client:
        results = client.map(requests, concurrency=4)
    assert isinstance(results, BatchResults) and len(results) == 13
    assert [item.id for item in results.items[:12]] == [f"item-{i}" for i in range(12)]
    for i, response in enumerate(results[:12]):
        assert response["choices"][0]["message"]["content"].endswith(f"item {i}")
    assert len(results.items[12].id) == 64  # no id: the request's cache key
    assert results.counts() == {"answered": 13, "resumed": 0, "failed": 0, "not_run": 0}
    assert results.stopped is None
    assert sim_env.request_count("ollama") == 13


def test_a_bad_item_fails_alone_and_costs_nothing(sim_env):
    requests = [prompts(1)[0], 42, {"prompt": 3}, {"id": "x"}, {"id": "item-0", "prompt": "y"}]
    requests.append({"prompt": "fine", "temperature": 9})
    with LLMClient(free_only()) as client:
        results = client.map(requests)
        assert len(client.ledger.rows()) == 1
    assert results[0]["provider"] == "ollama"
    for error in results[1:]:
        assert isinstance(error, LLMValidationError)
    assert "got int" in str(results[1]) and "not int" in str(results[2])
    assert "no messages" in str(results[3]) and "also the id of item 0" in str(results[4])
    assert "temperature" in str(results[5])
    assert [item.status for item in results.items] == ["answered"] + ["failed"] * 5
    assert sim_env.request_count("ollama") == 1


def test_one_failing_item_does_not_stop_the_others(sim_env):
    sim_env.set_fault("ollama", Fault.BAD_REQUEST, times=1)
    with LLMClient(free_only()) as client:
        results = client.map(prompts(6), concurrency=1)
    assert [item.status for item in results.items] == ["failed"] + ["answered"] * 5
    assert isinstance(results[0], LLMError)


def test_as_completed_yields_every_item_once(sim_env):
    with LLMClient(free_only()) as client:
        seen = [item.index for item in client.as_completed(prompts(9), concurrency=3)]

        async def collect() -> list[int]:
            return [item.index async for item in client.aas_completed(prompts(5), concurrency=2)]

        seen_async = asyncio.run(collect())
    assert sorted(seen) == list(range(9)) and sorted(seen_async) == list(range(5))


def test_a_named_run_returns_stored_answers_without_a_call(sim_env):
    with LLMClient(free_only()) as client:
        first = client.map(prompts(5), run="leads")
        sim_env.reset_requests()
        again = client.map([*prompts(7), [{"role": "user", "content": "new"}]], run="leads")
    assert again.counts() == {"answered": 3, "resumed": 5, "failed": 0, "not_run": 0}
    assert again[:5] == list(first)
    assert sim_env.request_count("ollama") == 3


def test_a_run_survives_the_client(sim_env):
    with LLMClient(free_only()) as client:
        client.map(prompts(4), run="leads")
    sim_env.reset_requests()
    with LLMClient(free_only()) as client:  # another process would do the same
        again = client.map(prompts(4), run="leads")
        other = client.map(prompts(2), run="other-run")
    assert again.counts()["resumed"] == 4 and other.counts()["answered"] == 2
    assert sim_env.request_count("ollama") == 2


def test_stop_at_spend_stops_new_items(sim_env):
    with LLMClient(paid_only()) as client:
        one = client.chat_completion([{"role": "user", "content": "price"}], max_tokens=20)
        limit = one["cost"] * 3.5
        results = client.map(prompts(20), concurrency=1, stop_at_spend=limit, run="capped")
        again = client.map(prompts(20), concurrency=1, stop_at_spend=limit, run="capped")
    counts = results.counts()
    costs = [response["cost"] for response in results[: counts["answered"]]]
    assert sum(costs[:-1]) < limit <= sum(costs) == pytest.approx(results.spent)
    assert counts["answered"] in (3, 4) and counts["not_run"] == 20 - counts["answered"]
    error = results[-1]
    assert isinstance(error, LLMBatchNotRunError) and error.metadata["stop"] == "stop_at_spend"
    assert "stop_at_spend" in str(error)
    # The run's earlier spend counts: the cap is reached already, nothing new starts.
    assert again.counts()["resumed"] == counts["answered"]
    assert again.counts()["not_run"] == counts["not_run"] and again.spent == 0


def test_concurrency_bounds_the_requests_in_flight(monkeypatch):
    client = LLMClient(free_only())
    running, peak = [0], [0]

    async def fake(messages, **kwargs):
        running[0] += 1
        peak[0] = max(peak[0], running[0])
        await asyncio.sleep(0.01)
        running[0] -= 1
        return {"cost": 0.0, "messages": messages}

    monkeypatch.setattr(client, "achat_completion", fake)
    results = asyncio.run(client.amap(prompts(40), concurrency=5))
    assert peak[0] == 5 and len(results) == 40


def test_map_works_inside_a_running_event_loop(sim_env):
    """As in Jupyter: a loop runs in this thread, so the batch gets a loop of its own."""
    with LLMClient(free_only()) as client:

        async def notebook_cell() -> BatchResults:
            return client.map(prompts(3))

        results = asyncio.run(notebook_cell())
    assert results.counts()["answered"] == 3


def test_ctrl_c_stops_new_items_and_returns_what_finished(sim_env):
    sim_env.set_fault("ollama", Fault.DELAY, delay=0.2)

    def press_ctrl_c() -> None:  # once requests are under way: the batch's handler is set
        while sim_env.request_count("ollama") < 4:
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGINT)

    presser = threading.Thread(target=press_ctrl_c, daemon=True)
    with LLMClient(free_only()) as client:
        presser.start()
        results = client.map(prompts(60), concurrency=2)
    presser.join()
    counts = results.counts()
    assert results.stopped == "interrupted (Ctrl-C)"
    assert counts["answered"] >= 2 and counts["not_run"] > 0
    assert counts["answered"] + counts["not_run"] == 60
    assert sim_env.request_count("ollama") == counts["answered"]  # running ones settled
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_no_bar_when_stderr_is_not_a_terminal(sim_env, capfd):
    with LLMClient(free_only()) as client:
        client.map(prompts(3))
        assert capfd.readouterr().err == ""
        client.map(prompts(3), progress=True)
    bar = capfd.readouterr().err
    assert "3/3" in bar and "failed 0" in bar and "$0.0000" in bar


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"concurrency": 0}, "concurrency"),
        ({"concurrency": 2.5}, "concurrency"),
        ({"run": ""}, "run"),
        ({"stop_at_spend": -1}, "stop_at_spend"),
        ({"stop_at_spend": float("nan")}, "stop_at_spend"),
        ({"concurency": 3}, "concurency"),
    ],
)
def test_bad_options_are_refused_before_anything_runs(options, field):
    with pytest.raises(LLMValidationError) as caught:
        LLMClient(free_only()).map(prompts(2), **options)
    assert caught.value.metadata["field"] == field


def test_a_run_needs_cost_tracking(monkeypatch):
    monkeypatch.setenv("LLM_COST_TRACKING", "false")
    with pytest.raises(LLMValidationError, match="LLM_COST_TRACKING"):
        LLMClient(free_only()).map(prompts(2), run="leads")


def test_the_same_request_has_the_same_id_in_every_run():
    client = LLMClient(free_only())
    request = [{"role": "user", "content": "same"}]
    first, second = prepare_items(client, [request]), prepare_items(client, [{"messages": request}])
    assert first[0].id == second[0].id and first[0].error is None
    other = prepare_items(client, [{"messages": request, "temperature": 0.3}])
    assert other[0].id != first[0].id
