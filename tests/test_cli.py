"""The leadfactory-llm command: costs, status, config check, chat, and its errors."""

from __future__ import annotations

import io
import json
import os
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime

import pytest

from leadfactory.llm import (
    AllProvidersFailedError,
    LLMClient,
    LLMConfigurationError,
    LLMProviderError,
)
from leadfactory.llm.cli import main, parse_since
from leadfactory.llm.cli.output import hint_for
from leadfactory.llm.simulator import Fault

from .conftest import SENTINEL_KEY

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
    assert rows["openai"]["estimated"] == rows["anthropic"]["estimated"] == 0


def test_costs_json_counts_the_estimated_rows(ledger_with_calls, capsys):
    with sqlite3.connect(ledger_with_calls) as db:
        db.execute("UPDATE calls SET estimated = 1 WHERE provider = 'openai'")
    assert main(["costs", "--by", "provider", "--json"]) == 0
    rows = {row["provider"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["openai"]["estimated"] == 1 and rows["anthropic"]["estimated"] == 0


def test_costs_by_day_model_and_since(ledger_with_calls, capsys):
    assert main(["costs", "--by", "model", "--since", "1d", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {(r["provider"], r["model"]) for r in rows} >= {("openai", "gpt-5.4-mini")}
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
    assert main(["costs", "--since", "someday", "--ledger", str(tmp_path)]) == 2  # a bad value
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


def test_config_check_prints_each_models_prices_and_their_source(sim_env, monkeypatch, capsys):
    monkeypatch.setenv("ANTHROPIC_MODEL", "claude-3-sonnet-20240229")  # retired: not in the map
    monkeypatch.setenv("ANTHROPIC_COST_PER_1K_TOKENS", "0.015")
    assert main(["config", "check"]) == 0
    out = capsys.readouterr().out
    assert "prices, USD per 1M tokens" in out
    lines = {line.split()[0]: line.split() for line in out.splitlines() if line.strip()}
    # gpt-5.4-mini in LiteLLM's map: $0.75 in, $4.50 out, $0.075 cached per 1M tokens
    assert lines["openai"][1:] == ["gpt-5.4-mini", "0.750000", "4.500000", "0.075000", "-"] + [
        "litellm_map"
    ]
    assert lines["anthropic"][2:4] == ["15.000000", "15.000000"]
    assert lines["anthropic"][-1] == "user_blended" and lines["ollama"][-1] == "default"
    assert (
        "warning: anthropic: LiteLLM's price map does not know model 'claude-3-sonnet-20240229'"
        in out
    )
    monkeypatch.delenv("ANTHROPIC_COST_PER_1K_TOKENS")  # now nothing prices it
    assert main(["config", "check"]) == 1
    out = capsys.readouterr().out
    assert "anthropic: model 'claude-3-sonnet-20240229' has no price" in out
    assert "ANTHROPIC_INPUT_COST_PER_1K_TOKENS and ANTHROPIC_OUTPUT_COST_PER_1K_TOKENS" in out


def test_config_check_exit_codes(sim_env, monkeypatch, capsys):
    assert main(["config", "check"]) == 0
    assert "configuration OK" in capsys.readouterr().out
    monkeypatch.setenv("OPENAI_COST_PER_1K_TOKENS", "0")
    assert main(["config", "check"]) == 1
    assert "openai: cost_per_1k_tokens is 0" in capsys.readouterr().out
    monkeypatch.setenv("LLM_FALLBACK_STRATEGY", "bogus")
    assert main(["config", "check"]) == 1
    captured = capsys.readouterr()
    assert "configuration problems:" in captured.out and "LLM_FALLBACK_STRATEGY" in captured.out
    assert "config check" not in captured.err  # no hint to run the command that just ran
    assert "Traceback" not in captured.err


def test_chat(sim_env, capsys):
    assert main(["chat", "--model", "anthropic", "What", "is", "2+2?"]) == 0
    captured = capsys.readouterr()
    assert "Simulated anthropic reply to: What is 2+2?" in captured.out
    assert "[anthropic" in captured.err and "tokens" in captured.err


def run_cli(*args: str, **kwargs) -> subprocess.CompletedProcess:
    kwargs.setdefault("stdout", subprocess.PIPE)
    return subprocess.run(
        [sys.executable, "-m", "leadfactory.llm.cli", *args],
        stderr=subprocess.PIPE,
        text=True,
        check=False,
        timeout=120,
        **kwargs,
    )


@pytest.mark.parametrize(
    "command",
    [[], ["chat"], ["batch"], ["status"], ["costs"], ["path"], ["config"], ["config", "check"]],
    ids=lambda c: " ".join(c) or "top",
)
def test_help_is_useful_for_every_command(command):
    result = run_cli(*command, "--help")
    assert result.returncode == 0 and result.stderr == ""
    out = result.stdout
    assert out.startswith("usage: leadfactory-llm")
    description = out.split("\n\n")[1]
    assert len(description.split()) >= 6, description  # says what it does
    assert "options:" in out and "--help" in out
    assert "examples:\n  leadfactory-llm " in out
    if command == ["costs"]:
        assert all(option in out for option in ("--by", "--since", "--ledger", "--json"))
    if command == ["chat"]:
        assert all(option in out for option in ("--model", "--strategy", "--max-tokens"))
    if command == ["batch"]:
        assert all(option in out for option in ("--out", "--run", "--stop-at-spend"))


def test_version(capsys):
    from leadfactory.llm import __version__

    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"leadfactory-llm {__version__}"


def test_no_command_prints_the_help(capsys):
    assert main([]) == 2
    assert "COMMAND --help" in capsys.readouterr().out
    assert main(["config"]) == 2
    assert "check" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, named",
    [
        (["costs", "--by", "week"], "argument --by: invalid choice: 'week'"),
        (["chat", "--temperature", "warm", "hi"], "argument --temperature: invalid float"),
        (["chat", "--max-tokens", "lots", "hi"], "argument --max-tokens: invalid int"),
        (["costs", "--bogus"], "unrecognized arguments: --bogus"),
        (["nonsense"], "argument COMMAND: invalid choice: 'nonsense'"),
    ],
)
def test_bad_option_values_are_one_line_with_a_hint(argv, named, capsys):
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    error, hint = captured.err.splitlines()
    assert error.startswith("leadfactory-llm") and ": error: " in error and named in error
    assert hint.startswith("hint: `leadfactory-llm") and "--help" in hint
    assert "usage:" not in captured.err


def assert_one_error_line(err: str, *words: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 2, err
    assert lines[0].startswith("leadfactory-llm: error: ") and lines[1].startswith("hint: ")
    assert "Traceback" not in err
    for word in words:
        assert word in err, err
    return lines[0]


@pytest.mark.parametrize(
    "contents, says",
    [
        (b"this is not sqlite at all" * 100, "is not a SQLite database"),
        (None, "is a folder"),
        ("empty-sqlite", "is the SQLite database of something else (its own tables: other)"),
    ],
    ids=["garbage", "folder", "not-a-ledger"],
)
def test_unreadable_ledger_is_one_line(tmp_path, capsys, contents, says):
    path = tmp_path / "ledger-file"
    if contents is None:
        path.mkdir()
    elif contents == "empty-sqlite":
        sqlite3.connect(path).execute("CREATE TABLE other (x)").connection.close()
    else:
        path.write_bytes(contents)
    assert main(["costs", "--ledger", str(path)]) == 1
    assert_one_error_line(capsys.readouterr().err, says, str(path))


def test_costs_with_nothing_since(ledger_with_calls, capsys):
    assert main(["costs", "--since", "2999-01-01"]) == 0
    assert capsys.readouterr().out.startswith("no calls in ")
    assert main(["costs", "--since", "999999999999d"]) == 2
    assert_one_error_line(capsys.readouterr().err, "--since")


def test_costs_table_is_aligned(ledger_with_calls, capsys):
    assert main(["costs", "--by", "model"]) == 0
    table = capsys.readouterr().out.split("\n\n")[0].splitlines()
    assert len(table) >= 4  # header, rule, two models
    assert len({len(line) for line in table}) == 1  # the last column is right-aligned
    rule = table[1]
    for line in table:  # every column starts where the rule's dashes do
        for start in (i for i in range(1, len(rule)) if rule[i] == "-" and rule[i - 1] == " "):
            assert line[start - 1] == " ", line


def test_chat_with_no_provider_configured(monkeypatch, capsys):
    monkeypatch.setenv("OLLAMA_ENABLED", "false")  # and no API keys (conftest)
    assert main(["chat", "hi"]) == 1
    assert_one_error_line(
        capsys.readouterr().err, "No providers available", "OPENAI_API_KEY", "config check"
    )


def test_chat_when_no_provider_answers(monkeypatch, capsys):
    monkeypatch.setenv("OLLAMA_MAX_RETRIES", "0")  # conftest: nothing listens at OLLAMA_HOST
    assert main(["chat", "hi"]) == 1
    assert_one_error_line(capsys.readouterr().err, "LLMConnectionError", "ollama serve")


def test_status_with_no_provider_available(monkeypatch, capsys):
    monkeypatch.setenv("OLLAMA_ENABLED", "false")
    assert main(["status"]) == 1
    captured = capsys.readouterr()
    assert "disabled" in captured.out and "not configured: openai, anthropic" in captured.out
    assert_one_error_line(captured.err, "no provider can take a call", "OPENAI_API_KEY")


def test_chat_errors_are_one_line_with_a_hint(sim_env, capsys):
    for provider in ("ollama", "openai", "anthropic"):
        sim_env.set_fault(provider, Fault.UNAUTHORIZED)
    assert main(["chat", "--no-cache", "hi"]) == 1
    line = assert_one_error_line(capsys.readouterr().err, "AllProvidersFailedError", "status")
    assert "LLMAuthenticationError" in line and SENTINEL_KEY not in line
    sim_env.clear_faults()
    assert main(["chat", "--temperature", "5", "hi"]) == 1
    assert_one_error_line(capsys.readouterr().err, "LLMValidationError", "temperature")
    assert main(["chat", "--strategy", "fastest", "hi"]) == 2  # a bad value, as docs/cli.md says
    assert_one_error_line(capsys.readouterr().err, "'fastest'", "quality_optimized")
    assert sum(sim_env.request_count(p) for p in ("ollama", "openai", "anthropic")) == 3


def test_chat_with_an_empty_prompt(sim_env, monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.StringIO("  \n"))
    assert main(["chat"]) == 1
    assert_one_error_line(capsys.readouterr().err, "the prompt is empty")
    monkeypatch.setattr(sys, "stdin", io.StringIO("What is 2+2?\n"))
    assert main(["chat", "--json"]) == 0
    assert "What is 2+2?" in json.loads(capsys.readouterr().out)["choices"][0]["message"]["content"]


def test_unwritable_ledger_for_the_client_is_one_line(sim_env, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LLM_LEDGER_PATH", str(tmp_path / "a-file" / "ledger.db"))
    (tmp_path / "a-file").write_text("not a folder")
    assert main(["chat", "--no-cache", "hello"]) == 1  # status only reads: see test_ledger_files
    assert_one_error_line(capsys.readouterr().err, "LLM_LEDGER_PATH", "cannot be created")


def into_closed_pipe(*args: str) -> subprocess.CompletedProcess:
    """Run the command with stdout a pipe whose reader is gone, as in ``| head -1``."""
    read, write = os.pipe()
    os.close(read)
    try:
        return run_cli(*args, stdout=write)
    finally:
        os.close(write)


@pytest.mark.parametrize(
    "argv", [["costs", "--json"], ["costs"], ["status", "--json"], ["path"]], ids=" ".join
)
def test_closed_pipe_ends_quietly(ledger_with_calls, argv):
    result = into_closed_pipe(*argv)
    assert result.stderr == ""
    assert result.returncode == 141


def test_costs_does_not_import_litellm(ledger_with_calls):
    probe = (
        "import sys; from leadfactory.llm.cli import main; main(['costs']); "
        "print('litellm' in sys.modules, 'leadfactory.llm.client' in sys.modules, "
        "'pydantic' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ},
    )
    assert result.stdout.strip().splitlines()[-1] == "False False False"


@pytest.mark.parametrize(
    "error, command",
    [
        (LLMConfigurationError("Invalid configuration: LLM_X"), "config"),
        (LLMProviderError("the ledger at /x cannot be read"), "status"),
        (AllProvidersFailedError({}), "config"),
    ],
)
def test_a_hint_never_says_to_run_the_command_that_failed(error, command):
    assert f"leadfactory-llm {command}" not in hint_for(error, command)
    assert hint_for(error, "chat")  # other commands keep their hint


def test_status_failing_with_a_library_error_does_not_hint_at_status(sim_env, monkeypatch, capsys):
    def broken(self):
        raise LLMProviderError("the ledger cannot be read")

    monkeypatch.setattr(LLMClient, "get_provider_status", broken)
    assert main(["status"]) == 1
    err = capsys.readouterr().err
    assert_one_error_line(err, "LLMProviderError")
    assert "`leadfactory-llm status`" not in err
