"""Ledger paths that cannot serve, and reading commands that never write (issue 12)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from leadfactory.llm.cli import main
from leadfactory.llm.config import LLMConfig
from leadfactory.llm.exceptions import LLMConfigurationError, LLMError
from leadfactory.llm.ledger import Budget, CostLedger

NO_LIMITS = Budget(max_cost_per_request=None, daily_limit=None, monthly_limit=None)


def spend_once(ledger: CostLedger, usd: float) -> None:
    reservation = ledger.reserve(
        request_id="r", provider="openai", model="gpt-4", estimated_usd=usd, budget=NO_LIMITS
    )
    ledger.settle(reservation, outcome="success", cost_usd=usd)


def bad_path(kind: str, tmp_path: Path) -> Path:
    """A path that cannot be a ledger, of the given kind."""
    path = tmp_path / f"{kind}.db"
    if kind == "folder":
        path.mkdir()
    elif kind == "device":
        return Path(os.devnull)
    elif kind == "garbage":
        path.write_bytes(b"not a database at all\n" * 50)
    elif kind == "damaged":  # a SQLite header, then nonsense
        path.write_bytes(b"SQLite format 3\x00" + b"\xff" * 4080)
    elif kind == "foreign":  # another application's database with its own calls table
        with sqlite3.connect(path) as conn:
            conn.execute("CREATE TABLE calls (who TEXT, number TEXT)")
            conn.execute("INSERT INTO calls VALUES ('Ada', '555')")
        conn.close()
    return path


KINDS = ["folder", "device", "garbage", "damaged", "foreign"]


@pytest.mark.parametrize("kind", KINDS)
def test_a_path_that_cannot_be_a_ledger_is_an_error_naming_it(tmp_path, kind):
    path = bad_path(kind, tmp_path)
    before = path.read_bytes() if path.is_file() else None
    with pytest.raises(LLMConfigurationError) as caught:
        CostLedger(path)
    assert isinstance(caught.value, LLMError)
    message = str(caught.value)
    assert str(path) in message and "LLM_LEDGER_PATH" in message
    assert caught.value.metadata["path"] == str(path)
    if before is not None:
        assert path.read_bytes() == before  # left as it was


def test_a_foreign_database_is_left_alone(tmp_path):
    path = bad_path("foreign", tmp_path)
    with pytest.raises(LLMConfigurationError, match=r"something else \(its own tables: calls\)"):
        CostLedger(path)
    with sqlite3.connect(path) as conn:
        names = {name for (name,) in conn.execute("SELECT name FROM sqlite_master")}
        assert names == {"calls"}
        assert conn.execute("SELECT * FROM calls").fetchall() == [("Ada", "555")]
    conn.close()


def test_an_empty_ledger_path_setting_is_refused(monkeypatch):
    monkeypatch.setenv("LLM_LEDGER_PATH", "")
    with pytest.raises(LLMConfigurationError, match="LLM_LEDGER_PATH"):
        LLMConfig.from_environment()
    with pytest.raises(LLMConfigurationError, match="LLM_LEDGER_PATH is empty"):
        CostLedger.default_path()


@pytest.mark.parametrize("kind", KINDS)
def test_config_check_reports_a_ledger_path_problem(tmp_path, monkeypatch, capsys, kind):
    path = bad_path(kind, tmp_path)
    monkeypatch.setenv("LLM_LEDGER_PATH", str(path))
    assert main(["config", "check"]) == 1
    out = capsys.readouterr().out
    assert "configuration OK" not in out
    assert f"the cost ledger {path}" in out


def test_config_check_creates_no_ledger(tmp_path, monkeypatch, capsys):
    path = tmp_path / "new" / "ledger.db"
    monkeypatch.setenv("LLM_LEDGER_PATH", str(path))
    assert main(["config", "check"]) == 0
    assert "configuration OK" in capsys.readouterr().out
    assert not (tmp_path / "new").exists()


def test_reading_commands_create_no_ledger(tmp_path, monkeypatch, capsys):
    path = tmp_path / "fresh" / "ledger.db"
    monkeypatch.setenv("LLM_LEDGER_PATH", str(path))
    main(["status"])  # no provider answers here: its exit status does not matter
    assert not (tmp_path / "fresh").exists()
    assert main(["costs"]) == 1
    assert f"no ledger at {path}" in capsys.readouterr().err


def listing(folder: Path) -> dict[str, bytes]:
    return {child.name: child.read_bytes() for child in sorted(folder.iterdir())}


def test_reading_commands_leave_an_existing_ledger_untouched(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "ledger"
    with CostLedger(folder / "ledger.db") as ledger:
        spend_once(ledger, 0.25)
    before = listing(folder)
    assert list(before) == ["ledger.db"]  # closed cleanly: no -wal or -shm left
    monkeypatch.setenv("LLM_LEDGER_PATH", str(folder / "ledger.db"))
    assert main(["costs", "--by", "provider", "--json"]) == 0
    assert '"cost_usd": 0.25' in capsys.readouterr().out
    main(["status", "--json"])
    assert '"daily_cost"' in capsys.readouterr().out
    assert listing(folder) == before  # nothing created, nothing changed


def test_a_read_only_ledger_refuses_writes_and_reads_a_missing_file_as_empty(tmp_path):
    missing = tmp_path / "none" / "ledger.db"
    with CostLedger(missing, read_only=True) as reader:
        assert (reader.spend(), reader.rows(), reader.alerts()) == (0.0, [], [])
        with pytest.raises(LLMError, match="read-only"):
            spend_once(reader, 0.1)
        with pytest.raises(LLMError, match="read-only"):
            reader.reset()
    assert not (tmp_path / "none").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere: no read-only folder")
def test_costs_and_status_read_a_ledger_in_a_read_only_folder(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "theirs"
    with CostLedger(folder / "ledger.db") as ledger:
        spend_once(ledger, 0.5)
    (folder / "ledger.db").chmod(0o444)
    folder.chmod(0o555)
    try:
        monkeypatch.setenv("LLM_LEDGER_PATH", str(folder / "ledger.db"))
        assert main(["costs", "--json"]) == 0
        assert '"cost_usd": 0.5' in capsys.readouterr().out
        main(["status", "--json"])
        assert '"daily_cost": 0.5' in capsys.readouterr().out
        with pytest.raises(LLMConfigurationError, match="not writable"):
            CostLedger(folder / "ledger.db")
    finally:
        folder.chmod(0o755)
