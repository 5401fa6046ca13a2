"""Run directories under the dashboard's roots: found, identified, and read (never written).

A run directory is one that holds a training run's or an evaluation's outputs (``RUN_MARKERS``), at most
``MAX_DEPTH`` levels under a root; a checkpoint's or model's own folders are not searched. Its id is the root's
label and its path below the root (``results/fuzzing``, ``ppo_training_output``). An id is only ever looked up in
the index of directories found, never joined to a path, and a file is read only when its real path (symlinks
resolved) lies inside the root: no id or link leads outside the given paths.

The names of the files are those ``training/`` writes (``training.metrics.METRICS_FILE``,
``training.findings.FINDINGS_JSONL``, ``training.output_dir.LOCK_NAME``; a test checks they agree). They are repeated
here rather than imported so that the dashboard starts without loading torch (which ``training``'s modules import).
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from training.report_tables import FINAL_TABLE

METRICS_FILE = "training_metrics.json"
CONFIG_FILE = "training_config.yaml"
LOCK_NAME = ".run.lock"
EVALUATION_FILES = ("final_evaluation.json", "evaluation.json")  # end-of-run comparison; training/evaluate.py
FINDINGS_SUFFIX = "findings.jsonl"  # findings.jsonl, and copies kept beside another (results/fuzzing/training_...)
RUN_MARKERS = (METRICS_FILE, LOCK_NAME, *EVALUATION_FILES)
MAX_DEPTH = 4
SKIPPED_DIRS = re.compile(r"^(checkpoint-\d+.*|final_model|logs|tensorboard|tb|work|\..*|__pycache__)$")
_LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) ")
_FAILURE_LINE = re.compile(r" (ERROR|CRITICAL) |^Traceback ")
_INTERRUPTED_LINE = re.compile(r"interrupted|stopped by SIGTERM")


@dataclass(frozen=True)
class Run:
    """One run directory: its id, its path, and the root it was found under (the boundary of its reads)."""

    run_id: str
    path: Path
    root: Path

    def file(self, name: str) -> Path | None:
        """``name`` in this run, when it is a regular file whose real path lies inside the root; else None."""
        candidate = self.path / name
        try:
            real = candidate.resolve(strict=True)
        except (OSError, RuntimeError):
            return None
        return real if real.is_relative_to(self.root) and real.is_file() else None

    def read_json(self, name: str) -> Any:
        """The JSON in ``name``, or None when it is absent or not (yet) complete JSON."""
        path = self.file(name)
        if path is None:
            return None
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return None


def root_labels(roots: list[Path]) -> dict[str, Path]:
    """Each root under a label (its directory name, made unique with ``-2``, ``-3`` ...), real paths."""
    labels: dict[str, Path] = {}
    for root in roots:
        real = root.resolve()
        base = real.name or "root"
        label, n = base, 1
        while label in labels:
            n += 1
            label = f"{base}-{n}"
        labels[label] = real
    return labels


class RunIndex:
    """The run directories under the roots, found again on `refresh` (runs appear while the dashboard is up)."""

    def __init__(self, roots: list[Path]):
        self.roots = root_labels(roots)
        self.runs: dict[str, Run] = {}
        self.refresh()

    def refresh(self) -> dict[str, Run]:
        found: dict[str, Run] = {}
        for label, root in self.roots.items():
            for directory, dirnames, filenames in os.walk(root):  # followlinks=False: a linked folder is not entered
                here = Path(directory)
                depth = len(here.relative_to(root).parts)
                dirnames[:] = sorted(d for d in dirnames if not SKIPPED_DIRS.match(d)) if depth < MAX_DEPTH else []
                if any(name in filenames for name in RUN_MARKERS) or any(
                        name.endswith(FINDINGS_SUFFIX) for name in filenames):
                    relative = here.relative_to(root).as_posix()
                    run_id = label if relative == "." else f"{label}/{relative}"
                    found[run_id] = Run(run_id, here, root)
        self.runs = dict(sorted(found.items()))
        return self.runs

    def get(self, run_id: str) -> Run | None:
        """The run ``run_id`` names (looked up, never joined to a path), refreshing once for a new run."""
        if run_id not in self.runs:
            self.refresh()
        return self.runs.get(run_id)


def _lock_holder_alive(run: Run) -> bool | None:
    """None: no lock file; True: its pid runs on this host; False: a lock a killed run left behind."""
    path = run.file(LOCK_NAME)
    if path is None:
        return None
    try:
        holder = json.loads(path.read_text() or "null")
        pid, host = int(holder["pid"]), holder["host"]
    except (OSError, ValueError, TypeError, KeyError):
        return True  # being written: a run is taking the lock right now
    if host != socket.gethostname():
        return True  # another machine's run on a shared disk: trust the lock
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _log_files(run: Run) -> list[Path]:
    logs = run.path / "logs"
    if not logs.is_dir() or logs.is_symlink():
        return []
    return [p for p in sorted(logs.glob("ppo_training_*.log")) if run.file(f"logs/{p.name}")]


def _log_time(line: str) -> float | None:
    found = _LOG_TIME.match(line)
    if not found:
        return None
    return datetime.strptime(found[1], "%Y-%m-%d %H:%M:%S").timestamp() + int(found[2]) / 1000


def _log_span(run: Run) -> tuple[float | None, float | None, str]:
    """First and last timestamps of the run's logs, and the tail of the newest log (for its failure lines)."""
    logs = _log_files(run)
    if not logs:
        return None, None, ""
    with logs[0].open(errors="replace") as first:
        start = _log_time(first.readline())
    with logs[-1].open("rb") as last:
        last.seek(max(0, last.seek(0, os.SEEK_END) - 16384))
        tail = last.read().decode(errors="replace")
    ends = [t for t in map(_log_time, tail.splitlines()) if t is not None]
    return start, (ends[-1] if ends else None), tail


def config_of(run: Run) -> dict[str, Any] | None:
    path = run.file(CONFIG_FILE)
    if path is None:
        return None
    try:
        config = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return None
    return config if isinstance(config, dict) else None


def metrics_rows(run: Run) -> list[dict[str, Any]]:
    """The per-epoch records of ``training_metrics.json``, oldest first (empty when there is none yet)."""
    rows = run.read_json(METRICS_FILE)
    return [row for row in rows if isinstance(row, dict) and "epoch" in row] if isinstance(rows, list) else []


def findings_files(run: Run) -> list[str]:
    return sorted(p.name for p in run.path.glob(f"*{FINDINGS_SUFFIX}") if run.file(p.name))


def state_of(run: Run, tail: str) -> str:
    """``running`` (a live process holds the lock), ``failed`` (a killed run's lock is left, or the log ends in an
    error), ``interrupted`` (stopped at a safe point, resumable), else ``finished``."""
    alive = _lock_holder_alive(run)
    if alive:
        return "running"
    if alive is False or _FAILURE_LINE.search(tail):
        return "failed"
    if not (run.path / "final_model").is_dir() and _INTERRUPTED_LINE.search(tail):
        return "interrupted"
    return "finished"


def final_table_rows() -> list[tuple[str, str]]:
    """``training.report_tables.FINAL_TABLE``: (label, report key) of the end-of-run comparison."""
    return list(FINAL_TABLE)


def final_comparison(run: Run) -> dict[str, Any] | None:
    """The end-of-run comparison's headline table (``training.evaluation.FINAL_TABLE``), one column per model; rows
    no report holds (a key added after the run) are left out."""
    document = run.read_json("final_evaluation.json") or run.read_json("evaluation.json")
    reports = document.get("reports") if isinstance(document, dict) else None
    if not isinstance(reports, dict) or not reports:
        return None
    rows = [{"label": label, "key": key, "values": [report.get(key) for report in reports.values()]}
            for label, key in final_table_rows()]
    return {"models": list(reports), "rows": [row for row in rows if any(v is not None for v in row["values"])]}


def summary(run: Run) -> dict[str, Any]:
    """What the runs list shows of one run."""
    rows, config = metrics_rows(run), config_of(run)
    start, end, tail = _log_span(run)
    state = state_of(run, tail)
    if start is not None and end is not None:
        wall, wall_source = ((time.time() if state == "running" else end) - start), "logs"
    elif rows:
        wall = sum(float(r.get("time/rollout", 0) or 0) + float(r.get("time/update/total", 0) or 0) for r in rows)
        wall_source = "rollout + update time of the epochs"
    else:
        wall, wall_source = None, None
    ppo = (config or {}).get("ppo") or {}
    model = (config or {}).get("model") or {}
    last = rows[-1] if rows else {}
    kinds: dict[str, int] = {}
    for name in findings_files(run):
        for finding in read_findings(run, name):
            kinds[finding.get("kind", "?")] = kinds.get(finding.get("kind", "?"), 0) + 1
    return {
        "id": run.run_id, "path": str(run.path), "state": state,
        "kind": "training" if rows or run.file(LOCK_NAME) or _log_files(run) else "evaluation",
        "mode": (config or {}).get("mode"), "base_model": model.get("base_model"), "seed": (config or {}).get("seed"),
        "epochs": len(rows), "iterations": ppo.get("iterations"), "max_train_minutes": ppo.get("max_train_minutes"),
        "wall_seconds": wall, "wall_source": wall_source,
        "last": {key: last.get(key) for key in ("env/success_rate", "env/reward_mean", "env/hallucination_rate",
                                                 "objective/kl", "update/accepted")},
        "findings": dict(sorted(kinds.items(), key=lambda item: -item[1])),
        "evaluations": [name for name in EVALUATION_FILES if run.file(name)],
        "final_comparison": final_comparison(run),
    }


def read_findings(run: Run, name: str) -> list[dict[str, Any]]:
    """The records of one findings file; a line still being written (no newline yet, or not JSON) is skipped."""
    path = run.file(name)
    if path is None:
        return []
    findings = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            findings.append(record)
    return findings
