"""The project's docs stay true: code blocks run, the config table is current, examples run.

Conventions for the Markdown files checked here (docs/*.md and README.md):

* Every ```python block is executed, one test per block (``test_python_block[docs/x.md-3]``),
  against the simulator through the ``sim_env`` fixture of conftest.py: sentinel API keys,
  the three built-in providers pointed at the session's simulator, ledger and cache under
  the test's tmp_path, retry delays of 0.
* Blocks of one file share a namespace and run in order, so a block may use what an
  earlier block of the same file defined (``client``, ``messages``...). When a block is
  run alone (``-k "errors.md-3"``), the earlier blocks of its file run first. Blocks
  share names, not environment: each block starts from sim_env's environment, and
  whatever it changes in ``os.environ`` is undone after it.
* A block that cannot run here (it needs real keys, or it is a fragment) is preceded by
  an HTML comment, ``<!-- doctest: skip (needs real keys) -->``, with only blank lines in
  between; its test is skipped with the text in parentheses as the reason. Keep them rare.
* A block preceded by ``<!-- doctest: pytest -->`` is a pytest module (fixtures and
  tests): it is written to a file and run by pytest in a subprocess (no keys, temp HOME),
  outside the shared namespace, and must pass.
* Clients and simulators a file's blocks leave in the namespace are closed at the end.

Other checks: the configuration tables in docs/configuration.md match what
docs/gen_config_reference.py renders now; every environment variable the docs name is
one the library reads; relative links and their anchors resolve; and the two examples run offline to
completion in a subprocess (no keys, temp HOME and ledger).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from .conftest import child_environment

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
MARKDOWN = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]

_FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
_MARK = re.compile(
    r"<!--\s*doctest:\s*(?P<mode>skip|pytest)\s*(?:\((?P<reason>[^)]*)\))?\s*-->\s*\Z"
)


@dataclass(frozen=True)
class Block:
    path: Path
    index: int  # among the file's python blocks
    line: int  # 1-based line of the opening fence
    code: str
    skip: str | None  # reason, when marked to skip
    pytest: bool = False  # a pytest module, run in a subprocess

    @property
    def name(self) -> str:
        return f"{self.path.relative_to(ROOT).as_posix()}-{self.index}"


def python_blocks(path: Path) -> list[Block]:
    text = path.read_text(encoding="utf-8")
    blocks = []
    for match in _FENCE.finditer(text):
        if match.group(1) != "python":
            continue
        mark = _MARK.search(text[: match.start()].rstrip())
        mode = mark.group("mode") if mark else None
        reason = (mark.group("reason") or "marked skip").strip() if mode == "skip" else None
        line = text.count("\n", 0, match.start()) + 1
        blocks.append(Block(path, len(blocks), line, match.group(2), reason, mode == "pytest"))
    return blocks


BLOCKS = [block for path in MARKDOWN for block in python_blocks(path)]


# -- running the blocks ------------------------------------------------------------------


@dataclass
class FileRun:
    """One Markdown file's shared namespace, and how far its blocks have run."""

    namespace: dict[str, Any] = field(default_factory=lambda: {"__name__": "__docs__"})
    done: int = 0  # blocks run so far, in order
    failed: str | None = None  # the first block that failed

    def close(self) -> None:
        from leadfactory.llm import LLMClient
        from leadfactory.llm.simulator import Simulator

        for value in list(self.namespace.values()):
            # best effort: a failure here was already reported by the block's test
            with contextlib.suppress(Exception):
                if isinstance(value, LLMClient):
                    value.close()
                elif isinstance(value, Simulator):
                    value.stop()


@pytest.fixture(scope="module")
def file_runs() -> Iterator[dict[Path, FileRun]]:
    runs: dict[Path, FileRun] = {}
    yield runs
    for run in runs.values():
        run.close()


def execute(block: Block, namespace: dict[str, Any]) -> None:
    """Run ``block`` in ``namespace``; os.environ is restored afterwards."""
    saved = dict(os.environ)
    code = compile("\n" * (block.line) + block.code, str(block.path), "exec")  # real line numbers
    try:
        exec(code, namespace)
    finally:
        os.environ.clear()
        os.environ.update(saved)


@pytest.mark.parametrize("block", BLOCKS, ids=[block.name for block in BLOCKS])
def test_python_block(block: Block, file_runs: dict[Path, FileRun], children, sim_env) -> None:
    if block.skip is not None:
        pytest.skip(block.skip)
    if block.pytest:
        children[block.name].check()
        return
    run = file_runs.setdefault(block.path, FileRun())
    if run.failed is not None:
        pytest.fail(f"an earlier block of this file failed ({run.failed})")
    earlier = [b for b in BLOCKS if b.path == block.path and run.done <= b.index < block.index]
    for previous in earlier:  # when run alone, or after skipped blocks
        if previous.skip is None and not previous.pytest:
            try:
                execute(previous, run.namespace)
            except BaseException:
                run.failed = previous.name
                raise
        run.done = previous.index + 1
    try:
        execute(block, run.namespace)
    except BaseException:
        run.failed = block.name
        raise
    run.done = block.index + 1


def test_block_markers_are_read(tmp_path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "```python\nrun = 1\n```\n\n"
        "<!-- doctest: skip (needs real keys) -->\n\n```python\nskipped = 1\n```\n"
        "<!-- doctest: skip (unused) -->\nText in between.\n```python\nalso_run = 1\n```\n"
        "```bash\nnot python\n```\n"
        "<!-- doctest: pytest -->\n```python\ndef test_x(): pass\n```\n",
        encoding="utf-8",
    )
    blocks = python_blocks(page)
    assert [(b.index, b.line, b.skip, b.pytest) for b in blocks] == [
        (0, 1, None, False),
        (1, 7, "needs real keys", False),
        (2, 12, None, False),
        (3, 19, None, True),
    ]
    assert blocks[1].code == "skipped = 1\n"


def test_blocks_were_found() -> None:
    files = {block.path.name for block in BLOCKS}
    assert {"README.md", "configuration.md", "errors.md"} <= files, files


# -- the configuration tables ----------------------------------------------------------------


def load_generator() -> Any:
    spec = importlib.util.spec_from_file_location(
        "gen_config_reference", DOCS / "gen_config_reference.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_config_table_is_current() -> None:
    generator = load_generator()
    committed = (DOCS / "configuration.md").read_text(encoding="utf-8")
    assert generator.rewrite(committed) == committed, (
        "docs/configuration.md is out of date: run python docs/gen_config_reference.py"
    )


def test_config_table_lists_every_setting() -> None:
    from leadfactory.llm.config import CostConfig, LLMConfig
    from leadfactory.llm.settings_env import ProviderEnvironment as _ProviderEnvironment

    table = load_generator().render()
    for cls in (LLMConfig, CostConfig):
        for name, info in cls.model_fields.items():
            if not info.exclude:
                variable = (
                    "LLM_COST_TRACKING"
                    if name == "cost_tracking_enabled"
                    else f"LLM_{name.upper()}"
                )
                assert f"`{variable}`" in table
    for name in _ProviderEnvironment.model_fields:
        assert f"_{name.upper()}`" in table, name
    for name in ("OPENAI_BASE_URL", "ANTHROPIC_BASE_URL", "OLLAMA_HOST", "LLM_LEDGER_PATH"):
        assert f"`{name}`" in table


def _provider_variables(table: str) -> set[str]:
    return set(re.findall(r"`((?:OPENAI|ANTHROPIC|OLLAMA)_[A-Z0-9_]+)`", table))


SAMPLE_VALUES = {  # a valid value unlike any default, per variable suffix
    "API_KEY": "sk-docs-sample",
    "MODEL": "docs-sample-model",
    "ENABLED": "false",
    "BASE_URL": "http://docs.invalid:1/v1",
    "HOST": "http://docs.invalid:2",
    "TIMEOUT": "7.5",
    "RATE_LIMIT_RPM": "7",
    "RATE_LIMIT_TPM": "7000",
    "COST_PER_1K_TOKENS": "0.077",
    "INPUT_COST_PER_1K_TOKENS": "0.0011",
    "OUTPUT_COST_PER_1K_TOKENS": "0.0044",
    "PRIORITY": "17",
    "MAX_RETRIES": "7",
    "RETRY_DELAY": "0.7",
}
# Variables only read together: each is set with its companion (which the baseline lacks).
COMPANIONS = {
    "INPUT_COST_PER_1K_TOKENS": "OUTPUT_COST_PER_1K_TOKENS",
    "OUTPUT_COST_PER_1K_TOKENS": "INPUT_COST_PER_1K_TOKENS",
}


def test_the_table_says_which_provider_reads_which_variable(monkeypatch) -> None:
    """Setting each listed variable changes that provider; the others it does not read."""
    from leadfactory.llm.config import BUILTIN_PROVIDERS, providers_from_environment

    listed = _provider_variables(load_generator().render())
    monkeypatch.setenv("OPENAI_API_KEY", "sk-docs-base")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-docs-base")
    baseline = providers_from_environment()
    for provider in BUILTIN_PROVIDERS:
        for suffix, value in SAMPLE_VALUES.items():
            variable = f"{provider.upper()}_{suffix}"
            with monkeypatch.context() as patch:
                patch.setenv(variable, value)
                if suffix in COMPANIONS:
                    companion = COMPANIONS[suffix]
                    patch.setenv(f"{provider.upper()}_{companion}", SAMPLE_VALUES[companion])
                changed = providers_from_environment()[provider] != baseline[provider]
            assert changed == (variable in listed), (
                f"{variable}: read={changed}, listed={variable in listed}"
            )


# -- every variable the docs name exists ------------------------------------------------------

# Read by something other than config.py, and explained in prose.
OTHER_VARIABLES = {
    "OLLAMA_API_BASE",  # LiteLLM's own, for its Ollama model-info requests
    "LITELLM_LOCAL_MODEL_COST_MAP",
    "XDG_DATA_HOME",
    "XDG_CACHE_HOME",
    "LLM_TELEMETRY",  # telemetry/__init__.py, see observability.md
}


# Named in troubleshooting.md precisely because they do not exist.
NOT_VARIABLES = {"LLM_COST_TRACKING_ENABLED", "OLLAMA_BASE_URL"}


def test_every_variable_the_docs_name_exists() -> None:
    table = load_generator().render()
    known = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", table)) | OTHER_VARIABLES | NOT_VARIABLES
    pattern = re.compile(r"\b((?:LLM|OPENAI|ANTHROPIC|OLLAMA)_[A-Z0-9_]*[A-Z0-9])\b")
    unknown = {}
    for path in MARKDOWN:
        for name in pattern.findall(path.read_text(encoding="utf-8")):
            if name not in known:
                unknown.setdefault(name, path.name)
    assert not unknown, f"variables the library does not read: {unknown}"


def anchors(path: Path) -> set[str]:
    """GitHub's anchors for the headings of a Markdown file (code blocks left out)."""
    text = _FENCE.sub("", path.read_text(encoding="utf-8"))
    headings = re.findall(r"^#+\s+(.+?)\s*$", text, re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}


def test_relative_links_resolve() -> None:
    broken = []
    for path in MARKDOWN:
        text = _FENCE.sub("", path.read_text(encoding="utf-8"))
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if "://" in target:
                continue
            file, _, anchor = target.partition("#")
            linked = (path.parent / file) if file else path
            if not linked.exists():
                broken.append(f"{path.name}: {target}")
            elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
                broken.append(f"{path.name}: {target} (no such heading)")
    assert not broken, broken


# -- subprocesses: the examples, and pytest blocks --------------------------------------------

EXAMPLES = ["pipeline_node.py", "batch_async.py"]
PYTEST_BLOCKS = [block for block in BLOCKS if block.pytest and block.skip is None]


@dataclass
class Child:
    """A subprocess started with the module (it runs while the doc blocks do)."""

    what: str
    process: subprocess.Popen
    out: Path
    err: Path

    def check(self, timeout: float = 120) -> str:
        """Wait for the process; fail the test unless it exited 0. Returns its stdout."""
        try:
            code = self.process.wait(timeout=timeout)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
        out = self.out.read_text(errors="replace")
        err = self.err.read_text(errors="replace")
        assert code == 0, f"{self.what} exited with {code}\n--- stdout\n{out}\n--- stderr\n{err}"
        assert "Traceback" not in err, err
        return out


def spawn(what: str, argv: list[str], home: Path) -> Child:
    out, err = home / "stdout.txt", home / "stderr.txt"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen(
            argv,
            cwd=home,
            env=child_environment(home),
            stdout=stdout,
            stderr=stderr,
            stdin=subprocess.DEVNULL,
        )
    return Child(what, process, out, err)


@pytest.fixture(scope="module", autouse=True)
def children(request, tmp_path_factory) -> Iterator[dict[str, Child]]:
    """The examples and pytest blocks that were selected, all started at once."""
    selected = {item.callspec.id for item in request.session.items if hasattr(item, "callspec")}
    started: dict[str, Child] = {}
    for name in EXAMPLES:
        if name in selected:
            home = tmp_path_factory.mktemp(name.removesuffix(".py"))
            argv = [sys.executable, str(ROOT / "examples" / name)]
            started[name] = spawn(f"examples/{name}", argv, home)
    for block in PYTEST_BLOCKS:
        if block.name in selected:
            home = tmp_path_factory.mktemp("pytest-block")
            module = home / f"test_doc_block_{block.index}.py"
            module.write_text(block.code, encoding="utf-8")
            argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(module)]
            started[block.name] = spawn(f"{block.name} (pytest)", argv, home)
    yield started
    for child in started.values():
        if child.process.poll() is None:
            child.process.kill()
            child.process.wait()


@pytest.mark.parametrize("name", EXAMPLES, ids=EXAMPLES)
def test_example_runs_offline(name: str, children: dict[str, Child]) -> None:
    out = children[name].check()
    assert "simulator" in out.lower(), out
