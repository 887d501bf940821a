"""``leadfactory-llm chat`` streams: the text as it arrives, or whole with --no-stream."""

from __future__ import annotations

from leadfactory.llm.cli import main
from leadfactory.llm.simulator.streaming import StreamFault

from .stream_cases import replies_restored  # noqa: F401  (autouse fixture)


def test_chat_streams_the_answer(sim_env, capsys):
    assert main(["chat", "--model", "anthropic", "What", "is", "2+2?"]) == 0
    captured = capsys.readouterr()
    assert captured.out == "Simulated anthropic reply to: What is 2+2?\n"
    assert "[anthropic" in captured.err and "tokens" in captured.err
    [record] = sim_env.stream_records("anthropic")[-1:]
    assert record["complete"]


def test_chat_no_stream_waits_for_the_whole_answer(sim_env, capsys):
    before = len(sim_env.stream_records("openai"))
    assert main(["chat", "--no-stream", "--model", "openai", "hello"]) == 0
    captured = capsys.readouterr()
    assert captured.out == "Simulated openai reply to: hello\n"
    assert len(sim_env.stream_records("openai")) == before  # not streamed


def test_interrupted_chat_prints_what_arrived_and_the_error(sim_env, capsys):
    sim_env.set_reply("openai", "alpha beta gamma delta")
    sim_env.set_stream_fault("openai", StreamFault.CUT, after=2)
    assert main(["chat", "--no-cache", "--model", "openai", "hi"]) == 1
    captured = capsys.readouterr()
    assert captured.out == "alpha beta \n"
    assert "LLMStreamInterruptedError" in captured.err and "Traceback" not in captured.err
