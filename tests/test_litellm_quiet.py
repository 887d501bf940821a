"""LiteLLM's own success logging runs for the client's calls only when something reads it.

Over real HTTP against the simulator: LiteLLM's success handler (its background logging
of every call) is counted; a LiteLLM callback configured by the user still hears every
call the client makes, sync and async.
"""

from __future__ import annotations

import asyncio
import threading

import pytest

from leadfactory.llm import LLMClient, LLMConfig
from leadfactory.llm.litellm_quiet import _LISTENERS, listened, unlogged

USER = [{"role": "user", "content": "Say hello."}]


@pytest.fixture
def handled(monkeypatch) -> list[str]:
    """The models LiteLLM's success handler ran for (it runs on a thread pool)."""
    from litellm.litellm_core_utils.litellm_logging import Logging

    seen: list[str] = []
    lock = threading.Lock()
    original = Logging.success_handler

    def counting(self, *args, **kwargs):
        with lock:
            seen.append(str(self.model))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Logging, "success_handler", counting)
    return seen


def _client() -> LLMClient:
    return LLMClient(LLMConfig(fallback_strategy="smart_fallback", enable_caching=False))


def _bare(sim, **extra) -> dict:
    """The arguments of the same call made with LiteLLM directly (it logs it)."""
    return {
        "model": "openai/gpt-4",
        "messages": USER,
        "api_base": sim.base_url("openai"),
        "api_key": "sk-test",
        "max_tokens": 5,
        **extra,
    }


def _listening(monkeypatch, listener) -> None:
    """``listener`` is the one LiteLLM callback; LiteLLM copies ``callbacks`` into its
    other lists on a call, so each test starts them clean."""
    import litellm

    for name in _LISTENERS:
        monkeypatch.setattr(litellm, name, [])
    monkeypatch.setattr(litellm, "callbacks", [listener])


def _drain() -> None:
    """Let LiteLLM's logging thread pool finish what was handed to it."""
    from litellm import utils

    utils.executor.submit(lambda: None).result(timeout=10)


def test_client_calls_skip_litellm_logging_nobody_reads(sim_env, handled):
    import litellm

    client = _client()
    client.chat_completion(USER, model="openai/gpt-4", max_tokens=5)
    asyncio.run(client.achat_completion(USER, model="openai/gpt-4", max_tokens=5))
    _drain()
    assert handled == []
    # the same call made with LiteLLM directly is logged: the counter counts
    litellm.completion(**_bare(sim_env))
    _drain()
    assert handled == ["gpt-4"]


@pytest.mark.parametrize("asynchronous", [False, True])
def test_a_litellm_callback_set_by_the_user_still_hears_every_call(
    sim_env, monkeypatch, asynchronous
):
    import litellm
    from litellm.integrations.custom_logger import CustomLogger

    heard: list[str] = []

    class Listener(CustomLogger):
        def log_success_event(self, kwargs, response_obj, start_time, end_time, **_):
            heard.append(kwargs["model"])

        async def async_log_success_event(self, kwargs, response_obj, start_time, end_time, **_):
            heard.append(kwargs["model"])

    _listening(monkeypatch, Listener())
    assert listened(litellm)
    client = _client()
    if asynchronous:

        async def twice() -> None:
            await client.achat_completion(USER, model="openai/gpt-4", max_tokens=5)
            await asyncio.sleep(0.2)  # LiteLLM logs async calls in a task of its own

        asyncio.run(twice())
    else:
        client.chat_completion(USER, model="openai/gpt-4", max_tokens=5)
    _drain()
    assert "gpt-4" in heard


def test_unlogged_touches_nothing_outside_its_block_and_nothing_when_listened(monkeypatch):
    import litellm
    from litellm._internal_context import is_internal_call

    with unlogged(litellm):
        assert is_internal_call.get() is True
        seen_elsewhere: list[bool] = []
        worker = threading.Thread(target=lambda: seen_elsewhere.append(is_internal_call.get()))
        worker.start()
        worker.join()
        assert seen_elsewhere == [False]  # other threads are not affected
    assert is_internal_call.get() is False
    monkeypatch.setattr(litellm, "max_budget", 5.0)
    with unlogged(litellm):
        assert is_internal_call.get() is False


def test_litellm_is_told_the_models_price_and_warns_of_no_zero_cost(sim, monkeypatch, capfd):
    """A provider built in code without a blended price, for a model LiteLLM's map
    prices: LiteLLM gets that model's price per call (as the ledger charges it), not a
    blended $0 it would warn about on every call."""
    import litellm

    from leadfactory.llm import ProviderConfig
    from leadfactory.llm.pricing import price_for

    provider = ProviderConfig(
        name="openai", api_key="sk-test", base_url=sim.base_url("openai"), default_model="gpt-4o"
    )
    sent: list[tuple[float, float]] = []
    real = litellm.completion

    def spy(**arguments):
        sent.append((arguments["input_cost_per_token"], arguments["output_cost_per_token"]))
        return real(**arguments)

    monkeypatch.setattr(litellm, "completion", spy)
    client = LLMClient(LLMConfig(providers={"openai": provider}, enable_caching=False))
    client.chat_completion(USER, max_tokens=5)
    client.chat_completion(USER, max_tokens=5)
    price = price_for(provider)
    assert price.input > 0 and sent == [(price.input, price.output)] * 2
    assert "priced at $0" not in capfd.readouterr().err


def test_client_streams_skip_litellms_chunk_logging_nobody_reads(sim_env, monkeypatch):
    import litellm
    from litellm.litellm_core_utils.streaming_handler import CustomStreamWrapper

    logged: list[str] = []
    real = CustomStreamWrapper.run_success_logging_and_cache_storage

    def counting(self, chunk, cache_hit):
        logged.append("chunk")
        return real(self, chunk, cache_hit)

    monkeypatch.setattr(CustomStreamWrapper, "run_success_logging_and_cache_storage", counting)
    client = _client()
    text = "".join(
        chunk["choices"][0]["delta"].get("content") or ""
        for chunk in client.chat_completion(USER, model="openai/gpt-4", max_tokens=5, stream=True)
        if chunk["choices"]
    )
    _drain()
    assert text and logged == []
    for _ in litellm.completion(**_bare(sim_env, stream=True)):  # logged
        pass
    _drain()
    assert logged


def test_a_litellm_callback_still_hears_a_client_stream(sim_env, monkeypatch):
    from litellm.integrations.custom_logger import CustomLogger

    heard: list[str] = []

    class Listener(CustomLogger):
        def log_success_event(self, kwargs, response_obj, start_time, end_time, **_):
            heard.append(kwargs["model"])

    _listening(monkeypatch, Listener())
    client = _client()
    for _ in client.chat_completion(USER, model="openai/gpt-4", max_tokens=5, stream=True):
        pass
    _drain()
    assert "gpt-4" in heard


def test_client_async_streams_skip_litellms_logging_task_nobody_reads(sim_env, monkeypatch):
    from litellm.litellm_core_utils.litellm_logging import Logging

    dispatched: list[str] = []
    real = Logging.dispatch_success_handlers

    async def counting(self, *args, **kwargs):
        dispatched.append(str(self.model))
        return await real(self, *args, **kwargs)

    monkeypatch.setattr(Logging, "dispatch_success_handlers", counting)

    async def read(stream) -> None:
        async for _ in stream:
            pass
        await asyncio.sleep(0.1)  # LiteLLM's task, if any, has run

    async def both() -> None:
        client = _client()
        await read(
            await client.achat_completion(USER, model="openai/gpt-4", max_tokens=5, stream=True)
        )
        assert dispatched == []
        import litellm  # the same stream through LiteLLM directly is logged

        await read(await litellm.acompletion(**_bare(sim_env, stream=True)))
        assert dispatched

    asyncio.run(both())


@pytest.fixture
def failures_handled(monkeypatch) -> list[str]:
    """The models LiteLLM's failure handler ran for (on the caller's thread)."""
    from litellm.litellm_core_utils.litellm_logging import Logging

    seen: list[str] = []
    original = Logging.failure_handler

    def counting(self, *args, **kwargs):
        seen.append(str(self.model))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Logging, "failure_handler", counting)
    return seen


def test_failed_client_calls_skip_litellms_failure_logging_nobody_reads(sim_env, failures_handled):
    """A failure is the client's to retry, fall back from and log: LiteLLM's failure
    handler (milliseconds of payload building and secret redaction per failure) does
    not run for it, sync or async; a bare LiteLLM call still runs it."""
    import litellm

    from leadfactory.llm import LLMError
    from leadfactory.llm.simulator import Fault

    sim_env.set_fault("openai", Fault.SERVER_ERROR)
    client = _client()
    with pytest.raises(LLMError):
        client.chat_completion(USER, model="openai/gpt-4", max_tokens=5)
    with pytest.raises(LLMError):
        asyncio.run(client.achat_completion(USER, model="openai/gpt-4", max_tokens=5))
    assert failures_handled == []
    with pytest.raises(Exception, match="500|[Ss]erver"):
        litellm.completion(**_bare(sim_env, num_retries=0, max_retries=0))
    assert failures_handled == ["gpt-4"]


def test_a_litellm_failure_callback_set_by_the_user_still_hears_a_failed_call(sim_env, monkeypatch):
    from litellm.integrations.custom_logger import CustomLogger

    from leadfactory.llm import LLMError
    from leadfactory.llm.simulator import Fault

    heard: list[str] = []

    class Listener(CustomLogger):
        def log_failure_event(self, kwargs, response_obj, start_time, end_time, **_):
            heard.append(kwargs["model"])

    _listening(monkeypatch, Listener())
    sim_env.set_fault("openai", Fault.SERVER_ERROR)
    with pytest.raises(LLMError):
        _client().chat_completion(USER, model="openai/gpt-4", max_tokens=5)
    _drain()
    assert "gpt-4" in heard


def test_unlogged_leaves_failures_to_the_client_in_its_block_only(monkeypatch):
    import litellm
    from litellm._internal_context import is_resent_failure

    failure = RuntimeError("a provider's failure")
    with unlogged(litellm):
        assert is_resent_failure(failure) is True
    assert is_resent_failure(failure) is False
    monkeypatch.setattr(litellm, "max_budget", 5.0)  # a LiteLLM budget reads its failures
    with unlogged(litellm):
        assert is_resent_failure(failure) is False
