"""Database files that are not what they should be: clear start-up errors, and no leaked working copies."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from agents.tool_client import SERVER_SCRIPT
from database import EpisodeDatabase, FlightDatabase


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


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # exited and reaped: no process has this pid now (barring reuse within the test)
    return child.pid


def test_stale_working_copies_of_dead_processes_are_removed_on_next_start(
        template_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the "system temp dir", for this test only
    stale = tmp_path / f"flightdb-{_dead_pid()}-k1ll3d"
    live = tmp_path / f"flightdb-{os.getpid()}-running"
    unrelated = tmp_path / "flightdb-no-pid-here"
    for directory in (stale, live, unrelated):
        directory.mkdir()
        (directory / "episode-0.db").write_bytes(template_db.read_bytes())

    episode = EpisodeDatabase(template_db)

    assert not stale.exists()  # left by a killed run: removed
    assert live.exists() and unrelated.exists()  # a running owner, or none we can tell: kept
    assert episode.workdir.parent == tmp_path and episode.workdir.name.startswith(f"flightdb-{os.getpid()}-")
    episode.close()
    assert not episode.workdir.exists()
