"""An application with its own regular ``leadfactory`` package can still import
``leadfactory.llm``, with the two lines docs/README.md gives (``pkgutil.extend_path``)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from .conftest import child_environment
from .test_docs import python_blocks

ROOT = Path(__file__).resolve().parent.parent
IMPORT_BOTH = (
    "import leadfactory.app, leadfactory.llm; print(leadfactory.app.NAME, leadfactory.llm.__file__)"
)


def documented_init() -> str:
    """The application ``__init__.py`` that docs/README.md tells users to write."""
    blocks = [b.code for b in python_blocks(ROOT / "docs" / "README.md") if "extend_path" in b.code]
    assert len(blocks) == 1, "docs/README.md shows one extend_path block"
    return blocks[0]


def run_app(tmp_path: Path, init: str) -> subprocess.CompletedProcess:
    """``import leadfactory.app, leadfactory.llm`` with the app's folder on sys.path before a
    normal install's layout (``site/leadfactory/llm``, no ``leadfactory/__init__.py``)."""
    site, app = tmp_path / "site", tmp_path / "app"
    shutil.copytree(
        ROOT / "leadfactory" / "llm",
        site / "leadfactory" / "llm",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    (app / "leadfactory").mkdir(parents=True)
    (app / "leadfactory" / "__init__.py").write_text(init)
    (app / "leadfactory" / "app.py").write_text('NAME = "the app"\n')
    dependencies = sysconfig.get_paths()["purelib"]  # pydantic and the rest, without .pth hooks
    env = child_environment(tmp_path / "home")
    env["PYTHONPATH"] = f"{app}:{site}:{dependencies}"
    # -S: no site hooks, so this checkout's editable-install finder plays no part.
    return subprocess.run(
        [sys.executable, "-S", "-c", IMPORT_BOTH],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_an_app_package_with_extend_path_keeps_leadfactory_llm_importable(tmp_path):
    result = run_app(tmp_path, documented_init())
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("the app ")  # the app's own module
    assert str(tmp_path / "site" / "leadfactory" / "llm") in result.stdout  # the installed library


def test_without_extend_path_the_app_package_hides_leadfactory_llm(tmp_path):
    """The problem the docs solve is real: a plain ``__init__.py`` hides the library."""
    result = run_app(tmp_path, "")
    assert result.returncode != 0
    assert "No module named 'leadfactory.llm'" in result.stderr
