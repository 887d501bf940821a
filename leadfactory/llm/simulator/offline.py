"""Run a script offline: point every built-in provider at a simulator for a ``with`` block."""

from __future__ import annotations

import os
import socket
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path
from unittest import mock
from urllib.parse import urlparse

from .server import Simulator

__all__ = ["offline_environment", "real_provider_configured"]

KEY_VARIABLES = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY")
PLACEHOLDER_KEYS = {  # tests/test_secrets_processes.py checks the demo never shows these
    "OPENAI_API_KEY": "sk-demo-not-a-real-key",
    "ANTHROPIC_API_KEY": "sk-ant-demo-not-a-real-key",
}
DEFAULT_OLLAMA = "http://localhost:11434"


def _dotenv_names(path: Path) -> set[str]:
    """The variables a ``.env`` file gives a non-empty value (the client reads it too)."""
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return set()
    names = set()
    for line in lines:
        name, sep, value = line.strip().removeprefix("export ").partition("=")
        if sep and not name.startswith("#") and value.strip().strip("'\""):
            names.add(name.strip())
    return names


def _ollama_answers(host: str, timeout: float = 0.3) -> bool:
    url = urlparse(host if "://" in host else f"http://{host}")
    try:
        with socket.create_connection((url.hostname or "localhost", url.port or 11434), timeout):
            return True
    except (OSError, ValueError):
        return False


def real_provider_configured() -> bool:
    """Whether an API key is set (in the environment or ``./.env``) or an Ollama server answers.

    Ollama is looked for at ``OLLAMA_HOST`` (default ``http://localhost:11434``) with a
    0.3 s connect.
    """
    if any(os.environ.get(name) for name in KEY_VARIABLES):
        return True
    if set(KEY_VARIABLES) & _dotenv_names(Path(".env")):
        return True
    return _ollama_answers(os.environ.get("OLLAMA_HOST") or DEFAULT_OLLAMA)


@contextmanager
def offline_environment(
    *, if_unconfigured: bool = False, env: Mapping[str, str] | None = None
) -> Iterator[Simulator | None]:
    """Point OpenAI, Anthropic and Ollama at a fresh :class:`Simulator` for a ``with`` block.

    Inside the block the environment holds the simulator's base URLs and placeholder API
    keys; the ledger and the cache are in a temporary folder unless ``LLM_LEDGER_PATH`` /
    ``LLM_CACHE_PATH`` are already set; and each variable of ``env`` is set unless already
    set. On exit ``os.environ`` is put back as it was before the block (changes made inside
    it are undone too), the simulator stops and the temporary folder is deleted. Yields
    the simulator, for ``set_fault()`` and friends::

        with offline_environment() as sim:
            client = LLMClient()  # every call goes to 127.0.0.1, through LiteLLM's HTTP code

    With ``if_unconfigured=True`` the block runs against the real providers instead, and
    ``None`` is yielded, when one is configured (see :func:`real_provider_configured`):
    that is how the examples run offline on a fresh machine and for real where keys exist.
    Clients made inside the block should be closed inside it.
    """
    if if_unconfigured and real_provider_configured():
        yield None
        return
    with ExitStack() as stack:
        sim = stack.enter_context(Simulator())
        scratch = Path(
            stack.enter_context(
                tempfile.TemporaryDirectory(prefix="leadfactory-llm-", ignore_cleanup_errors=True)
            )
        )
        values = {**sim.env(), **PLACEHOLDER_KEYS}
        unless_set = {
            "LLM_LEDGER_PATH": str(scratch / "ledger.db"),
            "LLM_CACHE_PATH": str(scratch / "cache.db"),
            **(env or {}),
        }
        values.update({k: v for k, v in unless_set.items() if not os.environ.get(k)})
        stack.enter_context(mock.patch.dict(os.environ, values))
        yield sim
