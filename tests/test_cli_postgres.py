"""The CLI against a PostgreSQL ledger: ``--ledger postgresql://...`` or LLM_LEDGER_URL."""

from __future__ import annotations

import json

from leadfactory.llm import LLMClient, LLMConfig
from leadfactory.llm.cli import main

from .test_postgres_ledger import PASSWORD, free_port, with_password

USER = [{"role": "user", "content": "Hi"}]


def test_costs_status_and_check_read_the_postgresql_ledger(
    sim_env, postgres_url, monkeypatch, capsys
):
    url = with_password(postgres_url)  # trust authentication ignores the password
    with LLMClient(LLMConfig(ledger_url=url)) as client:
        client.chat_completion(USER, model="openai")
        client.chat_completion(USER, model="anthropic")
    assert main(["costs", "--by", "provider", "--ledger", url, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(row["provider"], row["calls"]) for row in rows] == [("anthropic", 1), ("openai", 1)]
    monkeypatch.setenv("LLM_LEDGER_URL", url)
    for command in (["costs", "--by", "day"], ["status"], ["config", "check"]):
        assert main(command) == 0, capsys.readouterr()
        captured = capsys.readouterr()
        assert "PostgreSQL postgresql://postgres:***@127.0.0.1" in captured.out, command
        assert PASSWORD not in captured.out + captured.err
    monkeypatch.delenv("LLM_LEDGER_URL")
    assert main(["status", "--ledger", url]) == 0
    assert "(answers); settlements in the background" in capsys.readouterr().out
    monkeypatch.setenv("LLM_LEDGER_SETTLEMENT", "inline")
    assert main(["status", "--ledger", url]) == 0
    assert "(answers)\n" in capsys.readouterr().out


def test_a_postgresql_ledger_that_does_not_answer_is_a_problem(sim_env, capsys):
    down = with_password(f"postgresql://postgres@127.0.0.1:{free_port()}/test?connect_timeout=1")
    assert main(["config", "check", "--ledger", down]) == 1
    out = capsys.readouterr().out
    assert "(does not answer)" in out and "LLM_LEDGER_URL" in out
    assert main(["status", "--ledger", down]) == 1
    captured = capsys.readouterr()
    assert "did not answer" in captured.err
    assert PASSWORD not in out + captured.out + captured.err
