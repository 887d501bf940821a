"""``leadfactory-llm batch``: JSONL in, JSONL out, bad lines, resume, the progress bar."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import struct
import subprocess
import sys
import termios
import time

import pytest

from leadfactory.llm.cli import main


@pytest.fixture
def free_env(sim_env, monkeypatch):
    """Only Ollama (free) on the simulator: each item is one request."""
    monkeypatch.setenv("OPENAI_ENABLED", "false")
    monkeypatch.setenv("ANTHROPIC_ENABLED", "false")
    monkeypatch.setenv("LLM_ENABLE_CACHING", "false")
    return sim_env


def write_input(path, lines: list[str]) -> str:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def read_output(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_batch_writes_one_line_per_item_and_reports_bad_lines(free_env, tmp_path, capsys):
    lines = [
        json.dumps({"id": "a", "prompt": "first"}),
        "{not json",
        json.dumps({"id": "b", "messages": [{"role": "user", "content": "second"}]}),
        "",
        json.dumps(["a", "list"]),
        json.dumps({"id": "c"}),
        json.dumps({"prompt": "no id", "max_tokens": 10}),
        json.dumps({"id": "d", "prompt": "hot", "temperature": 7}),
    ]
    source, out = write_input(tmp_path / "in.jsonl", lines), tmp_path / "out.jsonl"
    assert main(["batch", source, "--out", str(out), "--concurrency", "2"]) == 1
    err = capsys.readouterr().err
    assert "line 2: not JSON" in err and "line 5: a JSON list, not an object" in err
    assert "line 6: no messages (a list) or prompt (a string); skipped" in err
    assert "3 succeeded (0 from an earlier run), 1 failed, 0 not run, 3 bad lines skipped" in err
    records = read_output(out)
    assert [r["line"] for r in records] == [1, 3, 7, 8]
    assert [r["id"] for r in records[:2]] == ["a", "b"] and len(records[2]["id"]) == 64
    assert records[0]["content"].endswith("first") and records[0]["provider"] == "ollama"
    assert records[0]["status"] == "answered" and records[0]["error"] is None
    assert records[0]["cost"] == 0.0 and records[0]["cached"] is False
    assert records[3]["error"] == "LLMValidationError" and "temperature" in records[3]["message"]
    assert free_env.request_count("ollama") == 3


def test_rerunning_the_same_command_resumes(free_env, tmp_path, capsys):
    source = write_input(
        tmp_path / "in.jsonl", [json.dumps({"id": i, "prompt": f"p{i}"}) for i in range(5)]
    )
    out = tmp_path / "out.jsonl"
    assert main(["batch", source, "--out", str(out)]) == 0
    first = read_output(out)
    free_env.reset_requests()
    capsys.readouterr()
    assert main(["batch", source, "--out", str(out)]) == 0
    assert "5 succeeded (5 from an earlier run)" in capsys.readouterr().err
    assert free_env.request_count("ollama") == 0
    again = read_output(out)
    assert [r["content"] for r in again] == [r["content"] for r in first]
    assert {r["status"] for r in again} == {"resumed"}
    # Another output file is another run, unless --run names the same one.
    assert main(["batch", source, "--out", str(tmp_path / "other.jsonl")]) == 0
    assert free_env.request_count("ollama") == 5


def test_bad_options_are_usage_errors(free_env, tmp_path, capsys):
    source = write_input(tmp_path / "in.jsonl", [json.dumps({"prompt": "x"})])
    assert main(["batch", source, "--out", "o.jsonl", "--concurrency", "0"]) == 2
    assert "--concurrency 0" in capsys.readouterr().err
    assert main(["batch", str(tmp_path / "missing.jsonl"), "--out", "o.jsonl"]) == 1
    assert "cannot read" in capsys.readouterr().err


def run_batch_on_a_terminal(args: list[str]) -> tuple[int, str]:
    """Run the command with stderr on a pseudo-terminal; its exit status and what it drew."""
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))  # 120 columns
    process = subprocess.Popen(
        [sys.executable, "-m", "leadfactory.llm.cli", "batch", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=terminal,
    )
    os.close(terminal)
    drawn, deadline = b"", time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([controller], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(controller, 65536)
                except OSError:  # the terminal closed: the command ended
                    break
                if not chunk:
                    break
                drawn += chunk
            elif process.poll() is not None:
                break
        return process.wait(timeout=30), drawn.decode("utf-8", "replace")
    finally:
        os.close(controller)
        if process.poll() is None:
            process.kill()


def test_the_bar_is_drawn_on_a_terminal_and_not_elsewhere(free_env, tmp_path):
    source = write_input(
        tmp_path / "in.jsonl", [json.dumps({"id": i, "prompt": f"p{i}"}) for i in range(6)]
    )
    code, drawn = run_batch_on_a_terminal([source, "--out", str(tmp_path / "tty.jsonl")])
    assert code == 0
    assert "6/6" in drawn and "failed 0" in drawn and "100%" in drawn
    assert "item/s" in drawn or "s/item" in drawn  # the rate
    piped = subprocess.run(
        [sys.executable, "-m", "leadfactory.llm.cli", "batch", source, "--out", "p.jsonl"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert piped.returncode == 0
    assert "6/6" not in piped.stderr and "item" not in piped.stderr
    assert "6 succeeded" in piped.stderr
