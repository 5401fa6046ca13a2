"""Database files that are not what they should be: clear start-up errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from agents.tool_client import SERVER_SCRIPT
from database import FlightDatabase


def _not_databases(tmp_path: Path) -> dict[str, Path]:
    (tmp_path / "folder").mkdir()
    (tmp_path / "notes.txt").write_text("hello, this is not SQLite\n" * 20)
    (tmp_path / "empty.db").touch()  # SQLite opens it as an empty database: no flight tables
    return {"a directory": tmp_path / "folder", "a text file": tmp_path / "notes.txt",
            "an empty file": tmp_path / "empty.db"}


def test_server_refuses_a_db_that_is_not_a_flight_database_at_start_up(tmp_path: Path) -> None:
    for kind, path in _not_databases(tmp_path).items():
        started = subprocess.run([sys.executable, str(SERVER_SCRIPT), "--db", str(path)], stdin=subprocess.DEVNULL,
                                 capture_output=True, text=True, timeout=60)
        assert started.returncode == 2, (kind, started.returncode, started.stderr)
        assert "Traceback" not in started.stderr, kind
        assert f"--db: {path} is not a flight database" in started.stderr.strip().splitlines()[-1], kind
        with pytest.raises(ValueError, match="is not a flight database"):  # the in-process transport, the same way
            FlightDatabase(path)
