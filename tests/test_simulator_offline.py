"""offline_environment: every provider variable pointed at a simulator, then restored.

It sets the base URLs, keys, ledger and cache paths and restores them afterwards, even
after an error; keeps a ledger path already set; starts only when the user has configured
nothing (each way of configuring counts); and the client it serves answers offline.
"""

from __future__ import annotations

import os
import socket
from typing import Any

import httpx
import pytest

from leadfactory.llm.simulator import Simulator, offline_environment

from .simulator_requests import REQUESTS, new_client

# fixtures, imported so that pytest finds them in this module
from .simulator_requests import client as client
from .simulator_requests import sim as sim

# --- offline_environment --------------------------------------------------------------------

OFFLINE_VARIABLES = (
    "OPENAI_BASE_URL",
    "ANTHROPIC_BASE_URL",
    "OLLAMA_HOST",
    "OLLAMA_API_BASE",
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    "LLM_LEDGER_PATH",
    "LLM_CACHE_PATH",
    "OLLAMA_RETRY_DELAY",
)


def snapshot() -> dict[str, str | None]:
    return {name: os.environ.get(name) for name in OFFLINE_VARIABLES}


def test_offline_environment_points_everything_at_a_simulator_then_restores(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("LLM_LEDGER_PATH")
    monkeypatch.delenv("LLM_CACHE_PATH")
    monkeypatch.setenv("OLLAMA_RETRY_DELAY", "0.5")
    before = snapshot()
    with offline_environment(env={"OLLAMA_RETRY_DELAY": "0", "OPENAI_RETRY_DELAY": "0"}) as sim:
        assert isinstance(sim, Simulator)
        for name, value in sim.env().items():
            assert os.environ[name] == value
        assert os.environ["OPENAI_API_KEY"] and os.environ["ANTHROPIC_API_KEY"]
        scratch = os.path.dirname(os.environ["LLM_LEDGER_PATH"])
        assert os.path.isdir(scratch)
        assert os.path.dirname(os.environ["LLM_CACHE_PATH"]) == scratch
        assert os.environ["OLLAMA_RETRY_DELAY"] == "0.5"  # already set: left alone
        assert os.environ["OPENAI_RETRY_DELAY"] == "0"
        url = sim.base_url("openai")
        with new_client() as c:
            assert c.post(url + "/chat/completions", json=REQUESTS["openai"][1]).status_code == 200
    assert snapshot() == before and "OPENAI_RETRY_DELAY" not in os.environ
    assert not os.path.exists(scratch)
    with pytest.raises(httpx.ConnectError), new_client() as c:
        c.post(url + "/chat/completions", json=REQUESTS["openai"][1])


def test_offline_environment_keeps_a_ledger_path_already_set() -> None:
    ledger = os.environ["LLM_LEDGER_PATH"]  # conftest points it at tmp_path
    with offline_environment():
        assert os.environ["LLM_LEDGER_PATH"] == ledger


def test_offline_environment_restores_after_an_error() -> None:
    before = snapshot()
    with pytest.raises(RuntimeError), offline_environment():
        raise RuntimeError("boom")
    assert snapshot() == before


@pytest.mark.parametrize("configured_by", ["key", "dotenv", "ollama", None])
def test_offline_environment_if_unconfigured(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any, configured_by: str | None
) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    if configured_by == "key":
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-real")
    elif configured_by == "dotenv":  # the client reads ./.env, so it counts too
        (tmp_path / ".env").write_text("# keys\nexport OPENAI_API_KEY='sk-real'\n")
    elif configured_by == "ollama":
        monkeypatch.setenv("OLLAMA_HOST", f"http://127.0.0.1:{listener.getsockname()[1]}")
    else:
        (tmp_path / ".env").write_text("OPENAI_API_KEY=\nLLM_DAILY_COST_LIMIT=5\n")
    before = snapshot()
    with listener, offline_environment(if_unconfigured=True) as sim:
        if configured_by is None:
            assert isinstance(sim, Simulator)
            assert os.environ["OLLAMA_HOST"] == sim.base_url("ollama")
        else:
            assert sim is None and snapshot() == before
    assert snapshot() == before


def test_offline_environment_serves_the_client() -> None:
    from leadfactory.llm import LLMClient

    with offline_environment() as sim, LLMClient() as client:
        response = client.chat_completion([{"role": "user", "content": "hi"}], max_tokens=5)
    assert response["provider"] == "ollama"
    assert response["choices"][0]["message"]["content"] == "Simulated ollama reply to: hi"
    assert sim.request_count("ollama") >= 1
