"""Collecting everything a user could see or keep, and searching it for the sentinel key.

``Evidence`` gathers messages, reprs, metadata, tracebacks with their cause chains,
pickles, response dicts, configuration and client dumps, and every file under a folder
(ledger and cache with their -wal files); the ``evidence`` fixture adds every log line of
the test (``logging`` at DEBUG, every logger, and loguru). ``assert_clean`` fails on the
full key or its secret middle: a provider may echo a masked key (``sk-SENT...4068``), as
OpenAI does in its 401 body, and that is not a leak. ``keyed_env`` gives Ollama the
sentinel too. Used by tests/test_secrets*.py.
"""

from __future__ import annotations

import contextlib
import json
import logging
import pickle
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from leadfactory.llm import (
    LLMClient,
    LLMError,
)

from .conftest import SENTINEL_KEY

# The full key, and the part of it a masked echo (first and last few characters) never shows.
SECRET_PARTS = (SENTINEL_KEY, SENTINEL_KEY.split("-", 1)[1][2:-4])


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
