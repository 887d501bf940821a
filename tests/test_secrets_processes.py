"""The API key never leaks to what other programs show: the CLI, the cassettes, child processes.

CLI output and the files it writes, every cassette (file and decoded contents), and the
output and files of two other processes (started once per module, run while the tests
wait): the demo, with its own keys playing the sentinel's part, and a script using the
sentinel. Evidence is collected and searched as in tests/secret_evidence.py.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from leadfactory.llm.simulator import Fault

from .conftest import SENTINEL_KEY, child_environment
from .secret_evidence import Evidence

# fixtures, imported so that pytest finds them in this module
from .secret_evidence import evidence as evidence
from .secret_evidence import keyed_env as keyed_env

ROOT = Path(__file__).resolve().parents[1]


DEMO_KEYS = ("sk-demo-not-a-real-key", "sk-ant-demo-not-a-real-key")


def test_no_key_in_the_cli(keyed_env, evidence, tmp_path, capsys):
    from leadfactory.llm.cli import main

    keyed_env.set_fault("openai", Fault.UNAUTHORIZED)
    keyed_env.set_fault("anthropic", Fault.SERVER_ERROR)
    runs = [
        ["status"],
        ["status", "--json"],
        ["config", "check"],
        ["chat", "--json", "--no-cache", "--max-tokens", "20", "hello"],
        ["chat", "--model", "openai", "--max-tokens", "20", "hello"],
        ["costs", "--by", "provider"],
        ["path"],
    ]
    for argv in runs:
        try:
            code = main(argv)
        except SystemExit as exit_:  # argparse
            code = exit_.code
        out, err = capsys.readouterr()
        evidence.add(f"cli {argv} -> {code}: stdout", out)
        evidence.add(f"cli {argv}: stderr", err)
    assert any("openai" in text for _, text in evidence.items)
    evidence.files("cli files", tmp_path)
    evidence.assert_clean(minimum=len(runs) * 2)


def test_no_key_in_the_cassettes():
    import yaml

    cassettes = ROOT / "cassettes"
    if not cassettes.is_dir():
        pytest.skip("no cassettes/ directory")
    recorded = [p for p in cassettes.rglob("*") if p.suffix in (".yaml", ".yml", ".json")]
    if not recorded:
        pytest.skip("no cassettes recorded")
    found = Evidence()
    for path in recorded:
        text = path.read_text(encoding="utf-8")
        found.add(str(path.relative_to(ROOT)), text)
        data = yaml.safe_load(text) or {}
        for interaction in data.get("interactions", []):
            headers = {name.lower() for name in interaction["request"].get("headers", {})}
            assert not headers & {"authorization", "x-api-key", "api-key"}, path
    found.assert_clean(minimum=len(recorded))


# -- other processes: the demo (its own keys), and a script using the sentinel ---------------

SENTINEL_SCRIPT = textwrap.dedent(
    """
    import asyncio, logging, os, sys, traceback
    from loguru import logger
    from leadfactory.llm import LLMClient, LLMConfig, LLMError
    from leadfactory.llm.cli import main as cli
    from leadfactory.llm.simulator import Fault, Simulator

    logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
    logger.enable("leadfactory.llm")
    logger.add(sys.stderr, level="DEBUG", backtrace=True, diagnose=True)
    question = [{"role": "user", "content": "What is the capital of France?"}]
    with Simulator() as sim:
        os.environ.update(sim.env())
        for name in ("OPENAI", "ANTHROPIC", "OLLAMA"):
            os.environ[name + "_API_KEY"] = os.environ["SENTINEL"]
            os.environ[name + "_RETRY_DELAY"] = "0"
        client = LLMClient(LLMConfig())
        print(repr(client.config), repr(client), client.get_provider_status())
        print(client.chat_completion(question, max_tokens=20))
        print(client.chat_completion(question, max_tokens=20))  # a cache hit
        sim.set_fault("ollama", Fault.UNAUTHORIZED)
        sim.set_fault("openai", Fault.RATE_LIMIT, retry_after=30)
        sim.set_fault("anthropic", Fault.FORBIDDEN)
        for call in (client.chat_completion, lambda *a, **k: asyncio.run(
                client.achat_completion(*a, **k))):
            try:
                call(question, max_tokens=20, cache=False)
            except LLMError:
                traceback.print_exc()
        logger.exception("a logged traceback, with loguru's variable values")
        cli(["status"])
        cli(["chat", "--no-cache", "hello"])
        client.close()
    print("SCRIPT DONE")
    """
)


class _Child:
    """A subprocess started early (it runs while the other tests do) and read at the end."""

    def __init__(self, argv: list[str], home: Path, env: dict[str, str]) -> None:
        self.home = home
        self.out = (home / "stdout.txt").open("wb")
        self.err = (home / "stderr.txt").open("wb")
        self.process = subprocess.Popen(
            argv, cwd=home, env=env, stdout=self.out, stderr=self.err, stdin=subprocess.DEVNULL
        )

    def result(self) -> tuple[int, str, str]:
        try:
            code = self.process.wait(timeout=180)
        finally:
            if self.process.poll() is None:
                self.process.kill()
            self.out.close()
            self.err.close()
        read = lambda name: (self.home / name).read_text(errors="replace")  # noqa: E731
        return code, read("stdout.txt"), read("stderr.txt")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        for stream in (self.out, self.err):
            if not stream.closed:
                stream.close()


@pytest.fixture(scope="module", autouse=True)
def children(request, tmp_path_factory) -> Iterator[dict[str, _Child]]:
    """Both processes start with the module, so they run while the other tests do."""
    wanted = {"test_the_demo_shows_no_key", "test_a_process_using_the_sentinel_shows_no_key"}
    if not any(item.name in wanted for item in request.session.items):
        yield {}
        return
    demo_home = tmp_path_factory.mktemp("demo")
    script_home = tmp_path_factory.mktemp("sentinel-script")
    script = script_home / "use_the_sentinel.py"
    script.write_text(SENTINEL_SCRIPT)
    script_env = {**child_environment(script_home), "SENTINEL": SENTINEL_KEY}
    started = {
        "demo": _Child(
            [sys.executable, str(ROOT / "examples" / "llm_fallback_demo.py")],
            demo_home,
            child_environment(demo_home),
        ),
        "script": _Child([sys.executable, str(script)], script_home, script_env),
    }
    yield started
    for child in started.values():
        child.stop()


def test_the_demo_shows_no_key(children):
    code, out, err = children["demo"].result()
    assert code == 0, err[-3000:]
    assert "using the built-in simulator" in out and "AllProvidersFailedError" in out
    found = Evidence()
    found.add("demo stdout", out)
    found.add("demo stderr", err)
    for where, text in found.items:
        for key in DEMO_KEYS:  # the keys the demo runs with play the sentinel's part
            assert key not in text, f"{where} shows the demo's key {key}"
    found.files("demo files", children["demo"].home)
    found.assert_clean(minimum=2)


def test_a_process_using_the_sentinel_shows_no_key(children):
    code, out, err = children["script"].result()
    assert code == 0, err[-3000:]
    assert "SCRIPT DONE" in out
    assert "AllProvidersFailedError" in err and "Traceback" in err  # the failures were shown
    found = Evidence()
    found.add("script stdout", out)
    found.add("script stderr", err)
    found.files("script files", children["script"].home)  # ledger, cache, their -wal
    found.assert_clean(minimum=3)
