"""Record the vcrpy cassettes under ``cassettes/`` that tests/test_cassettes.py replays.

Against the bundled simulator (no keys, no network; what is committed)::

    python -m tests.record_cassettes

Against the real providers (OPENAI_API_KEY, ANTHROPIC_API_KEY, and an Ollama server at
OLLAMA_HOST, default http://localhost:11434, with ``llama3:8b`` pulled)::

    python -m tests.record_cassettes --real

Options: ``--only NAME`` (repeatable) records some scenarios, ``--mode sync|async`` one
client path. A scenario whose provider is not available is skipped, and its old cassette kept.

Every request is rewritten to the vendor's real base URL before it is stored
(``https://api.openai.com/v1``, ``https://api.anthropic.com``, ``http://localhost:11434``),
so the tests replay with the client's default URLs and nothing running. Credentials are
removed: the ``authorization``, ``x-api-key`` and ``api-key`` headers are dropped, and every
key used is replaced by ``<API_KEY>`` wherever else it appears (URIs, bodies, response
headers and bodies). Recording ends with a scan that fails if a key is left in any cassette.

This module is also the single source of the scenarios and of the vcr configuration:
the tests import both, so recording and replay cannot drift apart.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import tempfile
import urllib.request
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import vcr

from leadfactory.llm import LLMClient, LLMConfig, ProviderConfig
from leadfactory.llm.simulator import Fault, Simulator

CASSETTES = Path(__file__).resolve().parent.parent / "cassettes"
MODES = ("sync", "async")
PROTOCOLS = ("openai", "anthropic", "ollama")

SENTINEL_KEY = "sk-SENTINEL-7f3a9c1e5b2d4068"
"""The key every simulator recording is made with; tests check it is in no cassette."""
INVALID_KEY = "sk-invalid-leadfactory-cassette-0000"
"""The key a provider that must fail with 401 is given (with the real providers too)."""
KEY_PLACEHOLDER = "<API_KEY>"

REAL_BASE_URLS = {
    "openai": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com",
    "ollama": "http://localhost:11434",
}
REPLAY_BASE_URLS: dict[str, str | None] = {
    "openai": None,  # no base URL: LiteLLM's default, https://api.openai.com/v1
    "anthropic": None,  # LiteLLM's default, https://api.anthropic.com
    "ollama": "http://localhost:11434",  # the client's built-in default
}

MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-3-5-haiku-20241022", "ollama": "llama3:8b"}
MISSING_OLLAMA_MODEL = "leadfactory-missing-model:latest"
"""A model no Ollama server has pulled: a real server answers 404."""
PRICES = {"openai": 0.03, "anthropic": 0.015, "ollama": 0.0}

PROMPT = [{"role": "user", "content": "What is the capital of France?"}]
TEMPERATURE = 0
MAX_TOKENS = 20

FILTER_HEADERS = (
    "authorization",
    "x-api-key",
    "api-key",
    "cookie",
    "openai-organization",
    "openai-project",
)
FILTER_QUERY_PARAMETERS = ("key", "api_key", "api-key")
DROP_RESPONSE_HEADERS = frozenset(
    {"set-cookie", "openai-organization", "openai-project", "anthropic-organization-id"}
)
MATCH_ON = ("method", "scheme", "host", "port", "path", "query", "body")
GENERATION_PATHS = {
    "openai": "/v1/chat/completions",
    "anthropic": "/v1/messages",
    "ollama": "/v1/chat/completions",
}
"""The request that asks each provider for an answer (Ollama through its OpenAI-compatible
API, the route the client uses); no other request may appear in a cassette."""


@dataclass(frozen=True)
class Scenario:
    """One recorded conversation: the providers in fallback order, and who fails how."""

    name: str
    providers: tuple[str, ...]  # tried in this order
    failing: str | None = None  # the first provider, made to fail
    fault: Fault | None = None  # how the simulator fails it
    status: int | None = None  # the HTTP status it fails with
    error: str | None = None  # the LLMError class the client reports for it
    retries: int = 0  # max_retries of the failing provider
    simulator_only: bool = False  # a real provider cannot be made to fail this way

    @property
    def answering(self) -> str:
        return self.providers[-1]

    @property
    def failing_attempts(self) -> int:
        return 0 if self.failing is None else 1 + self.retries

    def cassette(self, mode: str) -> Path:
        return cassette_path(self.name, mode)


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("openai_ok", ("openai",)),
    Scenario("anthropic_ok", ("anthropic",)),
    Scenario("ollama_ok", ("ollama",)),
    Scenario(
        "openai_401_falls_back_to_anthropic",
        ("openai", "anthropic"),
        failing="openai",
        fault=Fault.UNAUTHORIZED,
        status=401,
        error="LLMAuthenticationError",
    ),
    Scenario(
        "openai_500_retried_then_falls_back_to_anthropic",
        ("openai", "anthropic"),
        failing="openai",
        fault=Fault.SERVER_ERROR,
        status=500,
        error="LLMProviderError",
        retries=1,
        simulator_only=True,
    ),
    Scenario(
        "anthropic_401_falls_back_to_ollama",
        ("anthropic", "ollama"),
        failing="anthropic",
        fault=Fault.UNAUTHORIZED,
        status=401,
        error="LLMAuthenticationError",
    ),
    Scenario(
        "ollama_404_falls_back_to_openai",
        ("ollama", "openai"),
        failing="ollama",
        fault=Fault.NOT_FOUND,
        status=404,
        error="LLMModelNotFoundError",
    ),
)
SCENARIOS_BY_NAME = {s.name: s for s in SCENARIOS}


def cassette_path(name: str, mode: str) -> Path:
    return CASSETTES / mode / f"{name}.yaml"


def all_cassettes() -> list[Path]:
    return sorted(CASSETTES.glob("*/*.yaml"))


# -- the client ---------------------------------------------------------------------


def build_config(
    scenario: Scenario,
    base_urls: Mapping[str, str | None],
    keys: Mapping[str, str | None],
    models: Mapping[str, str] | None = None,
) -> LLMConfig:
    """The configuration a scenario is recorded and replayed with (only the URLs and keys
    differ): its providers in fallback order, no cache, no backoff. ``models`` overrides
    MODELS (tests use it to send a request the cassette does not hold)."""
    models = {**MODELS, **(models or {})}
    providers: dict[str, ProviderConfig] = {}
    for rank, name in enumerate(scenario.providers):
        failing = name == scenario.failing
        key = None if name == "ollama" else keys.get(name)
        if failing and scenario.fault is Fault.UNAUTHORIZED:
            key = INVALID_KEY
        model = models[name]
        if failing and scenario.fault is Fault.NOT_FOUND:
            model = MISSING_OLLAMA_MODEL if name == "ollama" else f"{model}-does-not-exist"
        providers[name] = ProviderConfig(
            name=name,
            api_key=key,
            base_url=base_urls.get(name),
            default_model=model,
            priority=len(scenario.providers) - rank,
            max_retries=scenario.retries if failing else 0,
            retry_delay=0,
            timeout=60,
            cost_per_1k_tokens=PRICES[name],
        )
    return LLMConfig(
        providers=providers,
        fallback_strategy="quality_optimized",
        max_fallback_attempts=len(providers),
        enable_caching=False,
        log_requests=False,
    )


def build_client(
    scenario: Scenario,
    base_urls: Mapping[str, str | None],
    keys: Mapping[str, str | None],
    models: Mapping[str, str] | None = None,
) -> LLMClient:
    config = build_config(scenario, base_urls, keys, models)
    return LLMClient(config, sleep=lambda _seconds: None)


def ask(client: LLMClient, mode: str, messages: Sequence[Mapping[str, Any]] = PROMPT) -> dict:
    """The scenario's request, through chat_completion or achat_completion."""
    kwargs: dict[str, Any] = {"temperature": TEMPERATURE, "max_tokens": MAX_TOKENS, "cache": False}
    if mode == "sync":
        return client.chat_completion(messages, **kwargs)
    if mode == "async":
        return asyncio.run(client.achat_completion(messages, **kwargs))
    raise ValueError(f"unknown mode {mode!r}; expected one of {MODES}")


def expected_attempts(scenario: Scenario) -> list[tuple[str, str, str | None]]:
    """(provider, outcome, error class) of every attempt the client should report."""
    failures = [(scenario.failing, "error", scenario.error)] * scenario.failing_attempts
    return [*failures, (scenario.answering, "success", None)]  # type: ignore[list-item]


def provider_of(uri: str) -> str | None:
    """The provider whose real base URL ``uri`` is on."""
    for name, base in REAL_BASE_URLS.items():
        if uri.startswith(base + "/"):
            return name
    return None


def generation_requests(requests: Iterable[Any]) -> list[tuple[str | None, Any]]:
    """(provider, request) of the recorded requests that ask for an answer, in order."""
    out = []
    for request in requests:
        provider = provider_of(request.uri)
        if provider is not None and request.path.endswith(GENERATION_PATHS[provider]):
            out.append((provider, request))
    return out


def expected_generation_providers(scenario: Scenario) -> list[str]:
    return [scenario.failing] * scenario.failing_attempts + [scenario.answering]  # type: ignore[list-item]


def check_response(scenario: Scenario, response: Mapping[str, Any]) -> None:
    """Raise AssertionError unless the response is what the scenario should produce."""
    got = [(a["provider"], a["outcome"], a["error"]) for a in response["attempts"]]
    want = expected_attempts(scenario)
    if response["provider"] != scenario.answering or got != want:
        raise AssertionError(f"{scenario.name}: expected attempts {want}, got {got}")


# -- vcr -----------------------------------------------------------------------------


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc


def rewrite_hosts(mapping: Mapping[str, str]):
    """A before_record_request hook moving requests from each recorded base URL (a
    simulator port) to the vendor's real base URL (URI and Host header; path and query
    kept)."""
    origins = {_origin(src): _origin(dst) for src, dst in mapping.items() if src != dst}

    def rewrite(request):
        parts = urlsplit(request.uri)
        target = origins.get((parts.scheme, parts.netloc))
        if target is not None:
            request.uri = urlunsplit((*target, parts.path, parts.query, parts.fragment))
            if "host" in request.headers:
                request.headers["host"] = target[1]
        return request

    return rewrite


def _drop_response_headers(response: dict) -> dict:
    headers = response.get("headers") or {}
    response["headers"] = {
        k: v for k, v in headers.items() if str(k).lower() not in DROP_RESPONSE_HEADERS
    }
    return response


def cassette_vcr(
    *, rewrite: Mapping[str, str] | None = None, secrets: Iterable[str | None] = ()
) -> vcr.VCR:
    """The one vcr configuration, for recording (``rewrite`` and ``secrets`` given) and replay.

    Requests match on method, scheme, host, port, path, query and body (as data when the
    request says it is JSON; LiteLLM's Ollama requests don't, so byte for byte), never on
    headers. Each recorded interaction plays once, in order.
    """
    sensitive = [(KEY_PLACEHOLDER, s) for s in dict.fromkeys(secrets) if s]
    return vcr.VCR(
        serializer="yaml",
        record_mode="none",
        match_on=MATCH_ON,
        filter_headers=FILTER_HEADERS,
        filter_query_parameters=FILTER_QUERY_PARAMETERS,
        before_record_request=rewrite_hosts(rewrite or {}),
        before_record_response=_drop_response_headers,
        decode_compressed_response=True,
        filter_sensitive_data=sensitive,
    )


def cassette_texts(path: Path) -> Iterator[str]:
    """Every string in a cassette as the tests and the secret scan see it: the file itself,
    then each request's URI, headers and body and each response's headers and body
    (decoded, so nothing hides in a !!binary block)."""
    from vcr.serialize import deserialize
    from vcr.serializers import yamlserializer

    text = path.read_text(encoding="utf-8")
    yield text
    requests, responses, *_ = deserialize(text, yamlserializer)
    for request, response in zip(requests, responses, strict=True):
        yield request.uri
        yield repr(dict(request.headers))
        body = request.body
        yield body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
        yield repr(response.get("headers"))
        content = (response.get("body") or {}).get("string", b"")
        yield content.decode("utf-8", "replace") if isinstance(content, bytes) else str(content)


def find_secrets(paths: Iterable[Path], secrets: Iterable[str]) -> list[str]:
    """``path: secret-prefix`` for each cassette holding one of ``secrets``."""
    found = []
    for path in paths:
        for secret in secrets:
            if secret and any(secret in text for text in cassette_texts(path)):
                found.append(f"{path}: {secret[:6]}...")
    return found


# -- recording -------------------------------------------------------------------------


def _versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in ("litellm", "openai", "httpx", "aiohttp", "vcrpy"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


@dataclass
class Target:
    """Where a recording goes: the simulator (with its faults) or the real providers."""

    source: str
    base_urls: dict[str, str | None]
    keys: dict[str, str | None]
    simulator: Simulator | None = None

    def rewrite(self) -> dict[str, str]:
        return {url: REAL_BASE_URLS[name] for name, url in self.base_urls.items() if url}

    def unavailable(self, scenario: Scenario) -> str | None:
        if self.simulator is not None:
            return None
        if scenario.simulator_only:
            return "the simulator is the only provider that fails this way on demand"
        for name in scenario.providers:
            if name == "ollama":
                if not _ollama_running(self.base_urls["ollama"]):
                    return f"no Ollama server at {self.base_urls['ollama']}"
            elif not self.keys.get(name) and name != scenario.failing:
                return f"{name.upper()}_API_KEY is not set"
        return None

    @contextmanager
    def faulted(self, scenario: Scenario) -> Iterator[None]:
        sim = self.simulator
        if sim is None:  # real providers fail by themselves: bad key, missing model
            yield
            return
        sim.clear_faults()
        if scenario.failing is not None:
            sim.set_fault(scenario.failing, scenario.fault)
        try:
            yield
        finally:
            sim.clear_faults()


def _ollama_running(base_url: str | None) -> bool:
    if not base_url:
        return False
    try:
        with urllib.request.urlopen(f"{base_url}/api/version", timeout=2):  # noqa: S310
            return True
    except OSError:
        return False


def record_one(target: Target, scenario: Scenario, mode: str) -> Path:
    """Record one scenario through one client path; returns the cassette written."""
    path = scenario.cassette(mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".recording.yaml")
    partial.unlink(missing_ok=True)
    secrets = [*target.keys.values(), INVALID_KEY]
    recorder = cassette_vcr(rewrite=target.rewrite(), secrets=secrets)
    client = build_client(scenario, target.base_urls, target.keys)
    try:
        with (
            target.faulted(scenario),
            recorder.use_cassette(str(partial), record_mode="once") as cassette,
        ):
            cassette.get_metadata(
                "recording",
                {
                    "source": target.source,
                    "scenario": scenario.name,
                    "mode": mode,
                    "versions": _versions(),
                },
            )
            response = ask(client, mode)
        check_response(scenario, response)
        recorded = [p for p, _ in generation_requests(r for r, _ in cassette.data)]
        if recorded != expected_generation_providers(scenario):
            raise AssertionError(
                f"{scenario.name}: recorded generation requests to {recorded}, "
                f"expected {expected_generation_providers(scenario)}"
            )
        leaked = find_secrets([partial], [s for s in secrets if s])
        if leaked:
            raise AssertionError(f"a key was left in the cassette: {leaked}")
        partial.replace(path)
    finally:
        client.close()
        partial.unlink(missing_ok=True)
    return path


@contextmanager
def environment(values: Mapping[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def record(source: str, names: Sequence[str], modes: Sequence[str]) -> int:
    scenarios = [SCENARIOS_BY_NAME[n] for n in names] if names else list(SCENARIOS)
    failures = 0
    with ExitStack() as stack:
        workdir = stack.enter_context(tempfile.TemporaryDirectory(prefix="cassettes-"))
        paths = {"LLM_LEDGER_PATH": "ledger.db", "LLM_CACHE_PATH": "cache.db"}
        stack.enter_context(environment({k: str(Path(workdir, v)) for k, v in paths.items()}))
        if source == "simulator":
            sim = stack.enter_context(Simulator())
            stack.enter_context(environment(sim.env()))
            target = Target(
                source,
                {name: sim.base_url(name) for name in PROTOCOLS},
                {"openai": SENTINEL_KEY, "anthropic": SENTINEL_KEY},
                sim,
            )
        else:
            host = os.environ.get("OLLAMA_HOST") or REAL_BASE_URLS["ollama"]
            host = (host if "://" in host else f"http://{host}").rstrip("/")
            target = Target(
                source,
                {"openai": None, "anthropic": None, "ollama": host},
                {
                    "openai": os.environ.get("OPENAI_API_KEY"),
                    "anthropic": os.environ.get("ANTHROPIC_API_KEY"),
                },
            )
        for scenario in scenarios:
            why = target.unavailable(scenario)
            for mode in modes:
                label = f"{mode}/{scenario.name}"
                if why:
                    print(f"skip   {label}: {why} (old cassette kept)")
                    continue
                try:
                    path = record_one(target, scenario, mode)
                except Exception as error:  # report every scenario, then fail
                    failures += 1
                    print(f"FAILED {label}: {type(error).__name__}: {error}")
                else:
                    print(f"wrote  {path.relative_to(CASSETTES.parent)}")
    return 1 if failures else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--real",
        action="store_true",
        help="record against the real providers (keys from the environment)",
    )
    parser.add_argument("--only", action="append", default=[], choices=sorted(SCENARIOS_BY_NAME))
    parser.add_argument("--mode", action="append", default=[], choices=MODES)
    args = parser.parse_args(argv)
    return record("real" if args.real else "simulator", args.only, args.mode or list(MODES))


if __name__ == "__main__":
    sys.exit(main())
