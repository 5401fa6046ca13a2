"""Episode isolation: a per-worker working copy of the template database, restored in milliseconds.

Each environment owns one working file. ``reset()`` copies the template over it with the SQLite backup API
(no rebuild), so bookings made in one episode never leak into the next, and the verifier reads exactly the
file the episode wrote (the MCP server process opens the same file).

Without a ``workdir`` the file lives in a ``flightdb-<pid>-*`` directory in the system temp dir, removed by
``close()``. A process killed before ``close()`` cannot remove its own, so each new one removes those whose
``<pid>`` is no longer running.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path

WORKDIR_PREFIX = "flightdb-"
_OWNER_PID = re.compile(rf"{WORKDIR_PREFIX}(\d+)-")


def _process_is_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


def remove_stale_working_copies(directory: str | os.PathLike) -> list[Path]:
    """Delete the ``flightdb-<pid>-*`` directories in ``directory`` whose owner process has exited; return them.

    Directories of running processes, and any without a pid in their name, are left alone.
    """
    if os.name != "posix":  # os.kill(pid, 0) would terminate the process on Windows
        return []
    removed = []
    for candidate in Path(directory).glob(f"{WORKDIR_PREFIX}*"):
        match = _OWNER_PID.match(candidate.name)
        if match is None or not candidate.is_dir() or int(match[1]) <= 0 or _process_is_running(int(match[1])):
            continue
        shutil.rmtree(candidate, ignore_errors=True)
        removed.append(candidate)
    return removed


class EpisodeDatabase:
    """A working copy of ``template`` at ``workdir/episode-{worker_id}.db``.

    Args:
        template: the built database (``python -m database.build``); opened read-only and held in memory.
        workdir: where the working file lives; when ``None``, a fresh ``flightdb-<pid>-*`` directory in the system
            temp dir (stale ones of exited processes are removed first).
        worker_id: distinguishes the files of concurrent environments.
    """

    def __init__(self, template: str | os.PathLike, workdir: str | os.PathLike | None = None, worker_id: int = 0):
        self.template = Path(template)
        if not self.template.exists():
            raise FileNotFoundError(f"template database not found: {self.template}")
        self._owns_workdir = workdir is None
        if workdir is None:
            remove_stale_working_copies(tempfile.gettempdir())
        self.workdir = Path(workdir) if workdir is not None else Path(
            tempfile.mkdtemp(prefix=f"{WORKDIR_PREFIX}{os.getpid()}-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.path = self.workdir / f"episode-{worker_id}.db"
        # Hold the template in memory once: each reset is then a page copy from RAM.
        source = sqlite3.connect(f"file:{self.template.resolve()}?mode=ro", uri=True)
        self._template_memory = sqlite3.connect(":memory:", check_same_thread=False)
        source.backup(self._template_memory)
        source.close()
        self._working = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        # The working copy is disposable: durability is not needed, speed is.
        self._working.execute("PRAGMA synchronous = OFF")
        self.last_reset_seconds = 0.0
        self.reset()

    def reset(self, code_salt: str | int | None = None) -> float:
        """Restore the working file to the template; return the seconds it took."""
        start = time.perf_counter()
        self._template_memory.backup(self._working)
        if code_salt is not None:
            self._working.execute("INSERT OR REPLACE INTO metadata (key, value) VALUES ('code_salt', ?)",
                                  (str(code_salt),))
        self.last_reset_seconds = time.perf_counter() - start
        return self.last_reset_seconds

    def close(self) -> None:
        self._working.close()
        self._template_memory.close()
        if self._owns_workdir:  # a temp dir we made: leave nothing behind
            shutil.rmtree(self.workdir, ignore_errors=True)
