"""Episode isolation: a per-worker working copy of the template database, restored in milliseconds.

Each environment owns one working file. ``reset()`` copies the template over it with the SQLite backup API
(no rebuild), so bookings made in one episode never leak into the next, and the verifier reads exactly the
file the episode wrote (the MCP server process opens the same file).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path


class EpisodeDatabase:
    """A working copy of ``template`` at ``workdir/episode-{worker_id}.db``.

    Args:
        template: the built database (``python -m database.build``); opened read-only and held in memory.
        workdir: where the working file lives; a fresh temporary directory when ``None``.
        worker_id: distinguishes the files of concurrent environments.
    """

    def __init__(self, template: str | os.PathLike, workdir: str | os.PathLike | None = None, worker_id: int = 0):
        self.template = Path(template)
        if not self.template.exists():
            raise FileNotFoundError(f"template database not found: {self.template}")
        self._owns_workdir = workdir is None
        self.workdir = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="flightdb-"))
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
