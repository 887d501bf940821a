"""The API key never leaks: not in a message, repr, log line, ledger, cache or cassette.

Every provider (Ollama too, through OLLAMA_API_KEY) is given the sentinel key, every
simulator fault is played on every protocol, and everything a user could see or keep is
collected and searched: log lines (``logging`` at DEBUG, every logger, and loguru),
exceptions (str, repr, metadata, ``provider_errors``, the whole traceback with its cause
chain, the pickle), response dicts, reprs and dumps of the configuration and the client,
``get_provider_status()``, CLI output, every file written under the test's temp dir
(ledger and cache with their -wal files), the cassettes, and the output of the demo and
of a separate process that uses the sentinel.

A provider may echo a masked key (``sk-SENT...4068``), as OpenAI does in its 401 body;
that is not a leak. The full key, or its secret middle, is.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import pickle
import subprocess
import sys
import textwrap
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from leadfactory.llm import (
    LLMClient,
    LLMConfig,
    LLMConfigurationError,
    LLMError,
    ProviderConfig,
)
from leadfactory.llm.simulator import Fault
from leadfactory.llm.simulator.faults import USAGE_FAULTS

from .conftest import SENTINEL_KEY, child_environment

ROOT = Path(__file__).resolve().parents[1]
USER = [{"role": "user", "content": "What is the capital of France?"}]
PROTOCOLS = ["openai", "anthropic", "ollama"]
BACKUP = {"openai": "ollama", "anthropic": "openai", "ollama": "openai"}
# The full key, and the part of it a masked echo (first and last few characters) never shows.
SECRET_PARTS = (SENTINEL_KEY, SENTINEL_KEY.split("-", 1)[1][2:-4])
DEMO_KEYS = ("sk-demo-not-a-real-key", "sk-ant-demo-not-a-real-key")


class Evidence:
    """Everything collected in one test, searched for the key at the end."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []
        self.live: dict[str, list[str]] = {}  # log lines, still being appended to

    def add(self, where: str, value: Any) -> None:
        self.items.append((where, value if isinstance(value, str) else repr(value)))

    def error(self, where: str, error: BaseException) -> None:
        self.add(f"{where}: str", str(error))
        self.add(f"{where}: repr", repr(error))
        self.add(f"{where}: pickle", pickle.dumps(error).decode("latin-1"))
        self.chain(where, error)
        if isinstance(error, LLMError):
            self.add(f"{where}: metadata", error.metadata)
            for name, inner in getattr(error, "provider_errors", {}).items():
                self.add(f"{where}: provider_errors[{name}] str", str(inner))
                self.add(f"{where}: provider_errors[{name}] repr", repr(inner))
                self.add(f"{where}: provider_errors[{name}] metadata", inner.metadata)
                self.chain(f"{where}: provider_errors[{name}]", inner)

    def chain(self, where: str, error: BaseException) -> None:
        """The traceback (every cause and context), and what a user reads off each link:
        its args and attributes, the SDK's body, the HTTP request's headers, the response."""
        self.add(f"{where}: traceback", "".join(traceback.format_exception(error)))
        link: BaseException | None = error
        while link is not None:
            at = f"{where}: {type(link).__name__}"
            self.add(f"{at} args", link.args)
            self.add(f"{at} vars", vars(link))
            for holder in (link, getattr(link, "response", None)):
                request = getattr(holder, "request", None)
                headers = getattr(request, "headers", None)
                if hasattr(headers, "multi_items"):
                    self.add(f"{at} request headers", list(headers.multi_items()))
            response = getattr(link, "response", None)
            if hasattr(response, "content"):
                with contextlib.suppress(Exception):  # a streamed response may be unread
                    self.add(f"{at} response", response.content.decode("latin-1"))
            link = link.__cause__ or link.__context__

    def response(self, where: str, response: dict) -> None:
        self.add(where, json.dumps(response))

    def client(self, where: str, client: LLMClient) -> None:
        self.add(f"{where}: repr(client)", repr(client))
        self.add(f"{where}: vars(client)", vars(client))
        self.add(f"{where}: repr(config)", repr(client.config))
        self.add(f"{where}: str(config)", str(client.config))
        self.add(f"{where}: config dump", client.config.model_dump())
        self.add(f"{where}: config json", client.config.model_dump_json())
        self.add(f"{where}: cost_config", repr(client.config.cost_config))
        for name, provider in client.config.providers.items():
            self.add(f"{where}: repr(providers[{name}])", repr(provider))
            self.add(f"{where}: str(providers[{name}])", str(provider))
            self.add(f"{where}: providers[{name}] dump", provider.model_dump())
            self.add(f"{where}: providers[{name}] json", provider.model_dump_json())
        self.add(f"{where}: validate()", client.config.validate())
        self.add(f"{where}: status", json.dumps(client.get_provider_status(), default=repr))
        self.add(f"{where}: ledger rows", client.ledger.rows())

    def files(self, where: str, root: Path) -> None:
        for path in sorted(root.rglob("*")):
            if path.is_file():
                self.add(f"{where}: {path.relative_to(root)}", path.read_bytes().decode("latin-1"))

    def leaks(self) -> list[str]:
        found = []
        logs = [(where, "\n".join(lines)) for where, lines in self.live.items()]
        for where, text in [*self.items, *logs]:
            for part in SECRET_PARTS:
                at = text.find(part)
                if at >= 0:
                    found.append(f"{where}: ...{text[max(0, at - 80) : at + 40]!r}...")
        return found

    def assert_clean(self, minimum: int = 1) -> None:
        assert len(self.items) >= minimum, "too little was collected: the test checks nothing"
        leaks = self.leaks()
        assert not leaks, "the API key leaked:\n" + "\n".join(leaks)


class _ListHandler(logging.Handler):
    def __init__(self, lines: list[str]) -> None:
        super().__init__(logging.DEBUG)
        self.lines = lines
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))  # includes the traceback of exc_info


@pytest.fixture
def evidence(tmp_path) -> Iterator[Evidence]:
    """An Evidence that also holds every log line of the test (every logger, loguru)."""
    from loguru import logger

    found = Evidence()
    stdlib_lines: list[str] = []
    loguru_lines: list[str] = []
    handler = _ListHandler(stdlib_lines)
    root = logging.getLogger()
    ours = logging.getLogger("leadfactory.llm")
    saved = root.level, ours.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    ours.setLevel(logging.DEBUG)
    found.live = {"logging lines": stdlib_lines, "loguru lines": loguru_lines}
    logger.enable("leadfactory.llm")
    sink = logger.add(
        loguru_lines.append,
        level="DEBUG",
        format="{name} {level} {message} {extra}\n{exception}",
        backtrace=True,
        diagnose=True,  # loguru's default: variable values in tracebacks
    )
    try:
        yield found
    finally:
        logger.remove(sink)
        logger.disable("leadfactory.llm")
        root.removeHandler(handler)
        root.setLevel(saved[0])
        ours.setLevel(saved[1])


@pytest.fixture
def keyed_env(sim_env, monkeypatch):
    """sim_env, with the sentinel for Ollama too (LiteLLM sends it as a bearer token)."""
    monkeypatch.setenv("OLLAMA_API_KEY", SENTINEL_KEY)
    return sim_env


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


# -- configuration mistakes around the key ---------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        {"api_key": [SENTINEL_KEY]},
        {"api_key": SENTINEL_KEY, "timeout": "abc"},
        {"api_keys": SENTINEL_KEY},
        {"extra_params": {"api_key": SENTINEL_KEY}, "timeout": -1},
        {"apikey": SENTINEL_KEY},
        {"key": SENTINEL_KEY},
        {"token": SENTINEL_KEY},
        {"api_key": SENTINEL_KEY, "base_url": SENTINEL_KEY},
    ],
    ids=lambda fields: "+".join(fields),
)
def test_no_key_in_provider_config_errors(fields):
    with pytest.raises(LLMConfigurationError) as caught:
        ProviderConfig(name="custom", default_model="m", **fields)
    found = Evidence()
    found.error("ProviderConfig error", caught.value)
    found.assert_clean()


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("OPENAI_TIMEOUT", "abc"),
        ("ANTHROPIC_MAX_RETRIES", "-1"),
        ("OPENAI_BASE_URL", SENTINEL_KEY),
        ("LLM_FALLBACK_STRATEGY", SENTINEL_KEY),
    ],
)
def test_no_key_in_environment_errors(keyed_env, monkeypatch, variable, value):
    """The sentinel is OPENAI_API_KEY (and the others'); a bad setting must not show it."""
    monkeypatch.setenv(variable, value)
    with pytest.raises(LLMConfigurationError) as caught:
        LLMConfig()
    found = Evidence()
    found.error("config error", caught.value)
    found.assert_clean()


PLAIN_KEY = "correct horse battery staple"  # a key that looks like nothing in particular


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("LLM_FALLBACK_STRATEGY", PLAIN_KEY),
        ("OPENAI_BASE_URL", f"http://{PLAIN_KEY}"),
        ("LLM_DAILY_COST_LIMIT", PLAIN_KEY),
    ],
)
@pytest.mark.parametrize("where", ["environment", ".env"])
def test_known_keys_are_redacted_from_configuration_errors(monkeypatch, where, variable, value):
    """Any *_API_KEY value, from the environment or .env, is redacted however it looks."""
    if where == ".env":
        Path(".env").write_text(f"MISTRAL_API_KEY={PLAIN_KEY}\n", encoding="utf-8")
    else:
        monkeypatch.setenv("MISTRAL_API_KEY", PLAIN_KEY)
    monkeypatch.setenv(variable, value)
    with pytest.raises(LLMConfigurationError) as caught:
        LLMConfig()
    assert variable in str(caught.value) and "[redacted]" in str(caught.value)
    assert PLAIN_KEY not in str(caught.value) and PLAIN_KEY not in repr(caught.value)


def test_provider_key_is_redacted_from_its_own_errors():
    with pytest.raises(LLMConfigurationError) as caught:
        ProviderConfig(name="custom", default_model="m", api_key=PLAIN_KEY, priority=PLAIN_KEY)
    assert "custom.priority" in str(caught.value) and PLAIN_KEY not in str(caught.value)
    provider = ProviderConfig(name="custom", default_model="m", api_key=PLAIN_KEY)
    with pytest.raises(LLMConfigurationError) as caught:
        provider.timeout = PLAIN_KEY
    assert "custom.timeout" in str(caught.value) and PLAIN_KEY not in str(caught.value)


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
