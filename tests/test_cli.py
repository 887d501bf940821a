"""The leadfactory-llm command: costs, status, config check, chat, and its errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime

import pytest

from leadfactory.llm import LLMClient
from leadfactory.llm.cli import main, parse_since

USER = [{"role": "user", "content": "Hi"}]


@pytest.fixture
def ledger_with_calls(sim_env):
    with LLMClient() as client:
        client.chat_completion(USER, model="openai")
        client.chat_completion(USER, model="anthropic")
        client.chat_completion(USER, model="anthropic")  # a cache hit
        path = client.ledger.path
    return path


def test_costs_by_provider_table_and_json(ledger_with_calls, capsys):
    assert main(["costs", "--by", "provider"]) == 0
    out = capsys.readouterr().out
    header = out.splitlines()[0].split()
    assert header[:3] == ["provider", "calls", "errors"]
    assert "anthropic" in out and "openai" in out and "total $" in out
    assert main(["costs", "--by", "provider", "--json"]) == 0
    rows = {row["provider"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["anthropic"]["calls"] == 2 and rows["anthropic"]["cache_hits"] == 1
    assert rows["openai"]["cost_usd"] > 0 and rows["anthropic"]["saved_usd"] > 0


def test_costs_by_day_model_and_since(ledger_with_calls, capsys):
    assert main(["costs", "--by", "model", "--since", "1d", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {(r["provider"], r["model"]) for r in rows} >= {("openai", "gpt-4")}
    assert main(["costs", "--since", "2999-01-01", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert main(["costs", "--ledger", str(ledger_with_calls)]) == 0
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    assert today in capsys.readouterr().out


def test_costs_errors_are_one_line_with_a_hint(tmp_path, capsys):
    assert main(["costs", "--ledger", str(tmp_path / "missing.db")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("leadfactory-llm: error: no ledger at") and "hint:" in err
    assert "Traceback" not in err
    assert main(["costs", "--since", "someday", "--ledger", str(tmp_path)]) == 1
    assert "--since" in capsys.readouterr().err


def test_parse_since():
    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    assert parse_since("today", now) == "2026-11-25"
    assert parse_since("2d", now).startswith("2026-11-23T12:00")
    assert parse_since("2026-11-01", now).startswith("2026-11-01T00:00:00+00:00")


def test_status_lists_every_provider(sim_env, capsys):
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    for name in ("ollama", "openai", "anthropic"):
        assert name in out
    assert main(["status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["openai"]["available"] is True and status["openai"]["priority"] == 2


def test_config_check_exit_codes(sim_env, monkeypatch, capsys):
    assert main(["config", "check"]) == 0
    assert "configuration OK" in capsys.readouterr().out
    monkeypatch.setenv("OPENAI_COST_PER_1K_TOKENS", "0")
    assert main(["config", "check"]) == 1
    assert "openai: cost_per_1k_tokens is 0" in capsys.readouterr().out
    monkeypatch.setenv("LLM_FALLBACK_STRATEGY", "bogus")
    assert main(["config", "check"]) == 1
    err = capsys.readouterr().err
    assert "LLM_FALLBACK_STRATEGY" in err and "Traceback" not in err


def test_chat(sim_env, capsys):
    assert main(["chat", "--model", "anthropic", "What", "is", "2+2?"]) == 0
    captured = capsys.readouterr()
    assert "Simulated anthropic reply to: What is 2+2?" in captured.out
    assert "[anthropic" in captured.err and "tokens" in captured.err


def test_help_is_useful_for_every_command():
    for command in (
        ["--help"],
        ["costs", "--help"],
        ["status", "--help"],
        ["chat", "--help"],
        ["config", "check", "--help"],
    ):
        result = subprocess.run(
            [sys.executable, "-m", "leadfactory.llm.cli", *command],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0 and "usage: leadfactory-llm" in result.stdout


def test_costs_does_not_import_litellm(ledger_with_calls):
    probe = (
        "import sys; from leadfactory.llm.cli import main; main(['costs']); "
        "print('litellm' in sys.modules, 'leadfactory.llm.client' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ},
    )
    assert result.stdout.strip().splitlines()[-1] == "False False"
