"""The API key never leaks from a call: not in a message, repr, log line, ledger or cache.

Every provider (Ollama too, through OLLAMA_API_KEY) is given the sentinel key, every
simulator fault is played on every protocol, falling back (sync) and failing (async),
and everything a user could see or keep is collected and searched (tests/secret_evidence.py):
log lines, exceptions (str, repr, metadata, ``provider_errors``, the whole traceback with
its cause chain, the pickle), response dicts, reprs and dumps of the configuration and the
client, ``get_provider_status()``, every file written under the test's temp dir. Normal
calls, cache hits and housekeeping, a custom provider, a budget refusal and a password in
a base URL too. Configuration errors are in tests/test_secrets_settings.py; the CLI, the
cassettes and other processes in tests/test_secrets_processes.py.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from leadfactory.llm import (
    LLMClient,
    LLMConfig,
    LLMError,
    ProviderConfig,
)
from leadfactory.llm.simulator import Fault
from leadfactory.llm.simulator.faults import USAGE_FAULTS

from .conftest import SENTINEL_KEY
from .secret_evidence import Evidence

# fixtures, imported so that pytest finds them in this module
from .secret_evidence import evidence as evidence
from .secret_evidence import keyed_env as keyed_env

USER = [{"role": "user", "content": "What is the capital of France?"}]
PROTOCOLS = ["openai", "anthropic", "ollama"]
BACKUP = {"openai": "ollama", "anthropic": "openai", "ollama": "openai"}


def finish(evidence: Evidence, tmp_path: Path, *clients: LLMClient) -> None:
    """Collect the clients and the files (with -wal) while open, then again after close."""
    for index, client in enumerate(clients):
        evidence.client(f"client {index}", client)
    evidence.files("open", tmp_path)
    for client in clients:
        client.close()
    evidence.files("closed", tmp_path)


def make_client(failing: str, backup: str | None, fault: Fault) -> LLMClient:
    config = LLMConfig(fallback_strategy="quality_optimized", enable_caching=False)
    keep = {failing} | ({backup} if backup else set())
    for name in list(config.providers):
        if name not in keep:
            del config.providers[name]
    provider = config.providers[failing]
    provider.priority = 10
    slow = fault in (Fault.HANG, Fault.TRICKLE)  # each attempt waits out its timeout
    provider.max_retries = 0 if slow else 1
    if slow:
        provider.timeout = 0.3
    return LLMClient(config)


def test_the_sentinel_is_every_providers_key(keyed_env):
    config = LLMConfig()
    assert set(config.providers) == set(PROTOCOLS)
    assert {p.secret_key() for p in config.providers.values()} == {SENTINEL_KEY}


# -- every fault, on every protocol, falling back (sync) and failing (async) ----------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("fault", list(Fault), ids=lambda f: f.value)
def test_no_key_in_anything_a_fault_leaves(keyed_env, evidence, tmp_path, protocol, fault):
    keyed_env.set_fault(protocol, fault, delay=0.05, retry_after=1)
    falling_back = make_client(protocol, BACKUP[protocol], fault)
    try:
        evidence.response("fallback response", falling_back.chat_completion(USER, max_tokens=20))
    except LLMError as error:
        evidence.error("fallback error", error)
    alone = make_client(protocol, None, fault)
    try:
        response = asyncio.run(alone.achat_completion(USER, max_tokens=20))
        evidence.response("async response", response)
        assert fault in (Fault.OK, Fault.DELAY, *USAGE_FAULTS), f"{fault} did not fail"
    except LLMError as error:
        evidence.error("async error", error)
    finish(evidence, tmp_path, falling_back, alone)
    assert evidence.live["logging lines"] and evidence.live["loguru lines"]
    evidence.assert_clean(minimum=20)


@pytest.mark.parametrize(
    "fault", [Fault.UNAUTHORIZED, Fault.SERVER_ERROR, Fault.REFUSE, Fault.ECHO_HEADERS]
)
def test_no_key_when_the_caller_logs_the_failure(keyed_env, evidence, tmp_path, fault):
    """What a pipeline does with a failure: log it with its traceback, through loguru
    (whose default handler shows variable values: diagnose=True) and through logging."""
    from loguru import logger

    keyed_env.set_fault("openai", fault)
    client = make_client("openai", None, fault)
    try:
        client.chat_completion(USER, max_tokens=20)
    except LLMError as error:
        logger.exception("the call failed")
        logging.getLogger("pipeline").exception("the call failed")
        evidence.error("error", error)
    finish(evidence, tmp_path, client)
    assert any("Traceback" in line for line in evidence.live["loguru lines"])
    evidence.assert_clean()


# -- normal calls, the cache, housekeeping ---------------------------------------------------


def test_no_key_in_normal_calls_cache_hits_and_housekeeping(keyed_env, evidence, tmp_path):
    client = LLMClient(LLMConfig(enable_caching=True))
    for protocol in PROTOCOLS:
        evidence.response(protocol, client.chat_completion(USER, model=protocol, max_tokens=20))
    hit = client.chat_completion(USER, model="openai", max_tokens=20)
    assert hit["cached"] is True
    evidence.response("cache hit", hit)
    async_hit = asyncio.run(client.achat_completion(USER, model="anthropic", max_tokens=20))
    assert async_hit["cached"] is True
    evidence.response("async cache hit", async_hit)
    evidence.add("available", client.get_available_providers())
    evidence.add("estimate", client._estimate_tokens(USER, 20))
    evidence.add("cache stats", client.cache.stats())
    finish(evidence, tmp_path, client)  # the cache and ledger files, before the reset
    client = LLMClient(LLMConfig(enable_caching=True))
    client.reset_cost_tracking()
    client.reset_cost_tracking("openai")
    evidence.add("cleared", client.clear_cache())
    finish(evidence, tmp_path, client)
    evidence.assert_clean(minimum=30)


def test_no_key_in_a_custom_provider(keyed_env, evidence, tmp_path):
    name = "custom_secret"
    try:
        url = keyed_env.add_provider(name, protocol="openai")
    except ValueError:  # the simulator lives for the session
        url = keyed_env.base_url(name)
    config = LLMConfig(enable_caching=False)
    config.providers[name] = ProviderConfig(
        name=name,
        api_key=SENTINEL_KEY,
        default_model="openai/custom-model",
        base_url=url,
        cost_per_1k_tokens=0.01,
        extra_params={"api_version": "2024-01-01"},
    )
    client = LLMClient(config)
    evidence.response("custom", client.chat_completion(USER, model=name, max_tokens=20))
    keyed_env.set_fault(name, Fault.UNAUTHORIZED)
    try:
        client.chat_completion(USER, model=name, max_tokens=20)
    except LLMError as error:
        evidence.error("custom 401", error)
    finish(evidence, tmp_path, client)
    evidence.assert_clean(minimum=10)


def test_no_key_when_the_budget_refuses(keyed_env, evidence, tmp_path, monkeypatch):
    monkeypatch.setenv("LLM_MAX_COST_PER_REQUEST", "0.000001")
    monkeypatch.setenv("OLLAMA_ENABLED", "false")
    client = LLMClient(LLMConfig(enable_caching=False))
    with pytest.raises(LLMError) as caught:
        client.chat_completion(USER, max_tokens=20)
    evidence.error("budget", caught.value)
    finish(evidence, tmp_path, client)
    evidence.assert_clean()


def test_no_password_from_a_base_url_in_the_chain(keyed_env, evidence, tmp_path):
    """A base URL with a password (``http://user:password@host``): the httpx errors behind
    an LLMError repeat the URL in their message and their request; neither shows it."""
    name = "custom_password"
    try:
        url = keyed_env.add_provider(name, protocol="openai")
    except ValueError:  # the simulator lives for the session
        url = keyed_env.base_url(name)
    config = LLMConfig(enable_caching=False)
    config.providers[name] = ProviderConfig(
        name=name,
        api_key="sk-another-key-0000",
        default_model="openai/custom-model",
        base_url=url.replace("http://", f"http://pipeline:{SENTINEL_KEY}@"),
        cost_per_1k_tokens=0.01,
        max_retries=0,
    )
    client = LLMClient(config)
    for fault in (Fault.UNAUTHORIZED, Fault.SERVER_ERROR, Fault.MALFORMED, Fault.RESET):
        keyed_env.set_fault(name, fault)
        with pytest.raises(LLMError) as caught:
            client.chat_completion(USER, model=name, max_tokens=20)
        evidence.error(f"{fault.name}", caught.value)
    finish(evidence, tmp_path, client)
    evidence.assert_clean(minimum=10)
