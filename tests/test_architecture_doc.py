"""docs/architecture.md names only what exists, so the page cannot rot silently.

Every backquoted token on the page is checked when it looks like code:

* a path (ends in ``.py`` or ``/``, or contains ``*``): relative to ``leadfactory/llm/``,
  or to the repository when it starts with ``tests/``, ``docs/``, ``bench/`` or
  ``leadfactory/``; a ``*`` must match at least one file;
* a dotted name (``flow.fallback_flow``, ``LLMClient.ledger``, ``typing.Protocol``): its
  first part is a module of ``leadfactory.llm``, a class defined in one, or an importable
  module, and every further part an attribute;
* a CamelCase name (``CostLedger``, ``Reserve``): a class (or other top-level name)
  defined in some module of ``leadfactory.llm``.

Everything else in backquotes (settings, SQL, row values, keys) is prose.
"""

from __future__ import annotations

import ast
import importlib
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "leadfactory" / "llm"
PAGE = ROOT / "docs" / "architecture.md"
REPO_PREFIXES = ("tests/", "docs/", "bench/", "leadfactory/")

_TOKEN = re.compile(r"`([^`\n]+)`")
_DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")
_CAMEL = re.compile(r"^_?[A-Z][A-Za-z0-9]*[a-z][A-Za-z0-9]*$")


def tokens() -> list[str]:
    return sorted(set(_TOKEN.findall(PAGE.read_text(encoding="utf-8"))))


def is_path(token: str) -> bool:
    return token.endswith((".py", "/")) or ("*" in token and "/" not in token.strip("*"))


@cache
def top_level_names() -> dict[str, list[str]]:
    """Name -> modules of leadfactory.llm that define it at top level."""
    found: dict[str, list[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            names: list[str] = []
            if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                names = [node.name]
            elif isinstance(node, ast.Assign):
                names = [t.id for t in node.targets if isinstance(t, ast.Name)]
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                names = [node.target.id]
            for name in names:
                found.setdefault(name, []).append(module)
    return found


def resolve_path(token: str) -> bool:
    base = ROOT if token.startswith(REPO_PREFIXES) else PACKAGE
    if "*" in token:
        return any(base.glob(token))
    return (base / token).exists()


def _declared(value: Any, name: str) -> bool:
    """A field with no class attribute: pydantic's, a dataclass's, an annotation."""
    if name in (getattr(value, "model_fields", None) or {}):
        return True
    if name in (getattr(value, "__dataclass_fields__", None) or {}):
        return True
    return any(name in vars(c).get("__annotations__", {}) for c in getattr(value, "__mro__", ()))


def _attribute_chain(value: Any, rest: list[str]) -> bool:
    for index, part in enumerate(rest):
        if hasattr(value, part):
            value = getattr(value, part)
        else:
            return index == len(rest) - 1 and _declared(value, part)
    return True


def _module(name: str) -> Any | None:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def resolve_dotted(token: str) -> bool:
    parts = token.split(".")
    for n in range(len(parts), 0, -1):  # a module (of leadfactory.llm first), then attributes
        for base in ("leadfactory.llm.", ""):
            module = _module(base + ".".join(parts[:n]))
            if module is not None and _attribute_chain(module, parts[n:]):
                return True
    for module_name in top_level_names().get(parts[0], []):  # a class, then attributes
        module = _module(module_name)
        if module is not None and _attribute_chain(module, parts):
            return True
    return False


def resolve_camel(token: str) -> bool:
    return token in top_level_names()


def checked_tokens() -> list[tuple[str, str]]:
    kinds = []
    for token in tokens():
        if is_path(token) or token.startswith(REPO_PREFIXES) and " " not in token:
            kinds.append(("path", token))
        elif _DOTTED.match(token) and not token.endswith((".md", ".db")):
            kinds.append(("dotted", token))
        elif _CAMEL.match(token):
            kinds.append(("name", token))
    return kinds


RESOLVERS = {"path": resolve_path, "dotted": resolve_dotted, "name": resolve_camel}


@pytest.mark.parametrize(("kind", "token"), checked_tokens())
def test_named_on_the_architecture_page_exists(kind: str, token: str) -> None:
    assert RESOLVERS[kind](token), (
        f"docs/architecture.md names {kind} `{token}`, which does not exist: "
        "update the page to the code as it is now"
    )


def test_the_page_is_checked_at_all() -> None:
    kinds = {kind for kind, _ in checked_tokens()}
    assert kinds == {"path", "dotted", "name"}
    assert len(checked_tokens()) > 60


@pytest.mark.parametrize(
    ("kind", "token"),
    [
        ("path", "ledger/nowhere.py"),
        ("path", "tests/contract/test_nothing_contract.py"),
        ("dotted", "flow.no_such_flow"),
        ("dotted", "LLMClient.no_such_method"),
        ("dotted", "leadfactory.llm.no_such_module"),
        ("dotted", "cache.store.NoSuchStore"),
        ("dotted", "LLMConfig.no_such_setting"),
        ("dotted", "flow.Request.no_such_field"),
        ("name", "NoSuchLedger"),
    ],
)
def test_a_missing_name_is_caught(kind: str, token: str) -> None:
    assert not RESOLVERS[kind](token)


def test_the_page_is_linked_from_the_docs_index() -> None:
    assert "(architecture.md)" in (ROOT / "docs" / "README.md").read_text(encoding="utf-8")
