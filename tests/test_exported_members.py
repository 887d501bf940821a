"""Every public name imports: __all__, and every name the user guide imports."""

from __future__ import annotations

import ast
import importlib

import leadfactory.llm

from .guide_blocks import GUIDE_BLOCKS


def test_every_name_in_all_imports():
    for name in leadfactory.llm.__all__:
        assert getattr(leadfactory.llm, name) is not None, name
    assert sorted(leadfactory.llm.__all__) == sorted(set(leadfactory.llm.__all__))


def test_budget_alert_is_exported_beside_the_ledger():
    from leadfactory.llm import BudgetAlert
    from leadfactory.llm.ledger import BudgetAlert as LedgerBudgetAlert
    from leadfactory.llm.ledger import CostLedger  # noqa: F401  (the documented import path)

    assert "BudgetAlert" in leadfactory.llm.__all__
    assert BudgetAlert is LedgerBudgetAlert


def test_every_name_the_guide_imports():
    imported = 0
    for _, code in GUIDE_BLOCKS:
        for node in ast.walk(ast.parse(code)):
            if isinstance(node, ast.ImportFrom) and node.module.startswith("leadfactory"):
                module = importlib.import_module(node.module)
                for alias in node.names:
                    assert hasattr(module, alias.name), f"{node.module}.{alias.name}"
                    imported += 1
    assert imported >= 16  # the guide's imports were all found


def test_importing_the_package_does_not_load_litellm_or_the_client():
    import subprocess
    import sys

    probe = (
        "import sys, leadfactory.llm; "
        "print(sorted(m for m in ('litellm', 'leadfactory.llm.client', 'pydantic') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert out.stderr == ""


def test_estimate_tokens_is_public_and_the_guides_name_still_works(sim_env):
    from leadfactory.llm import LLMClient

    messages = [{"role": "user", "content": "What is the capital of France?"}]
    with LLMClient() as client:
        tokens = client.estimate_tokens(messages, max_tokens=100)
        assert tokens > 100
        assert client._estimate_tokens(messages, max_tokens=100) == tokens
