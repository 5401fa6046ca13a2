"""Who owns a training output directory (``logging.output_dir``).

The directory belongs to one run at a time (``claim_output_dir``): a lock file ``.run.lock`` holds the pid of the
run using it, under an exclusive ``flock`` that the kernel drops when the process dies, so a lock left by a killed
run is taken over (with a message) and a second live run refuses. A fresh run refuses a directory holding an earlier
run's checkpoints or metrics unless it resumes (``--resume``) or overwrites (``--overwrite``, which removes the
earlier run's outputs first): otherwise its pruning would delete the old run's checkpoints and ``--resume latest``
would pick them up. A run resumed into a new directory carries the source run's history over
(``carry_run_history``).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
from pathlib import Path

from training.checkpoint import _CHECKPOINT_RE, _LEFTOVER_RE, remove_directory
from training.metrics import METRICS_FILE, read_metrics_history, write_text_atomic

logger = logging.getLogger(__name__)


class OutputDirError(ValueError):
    """An output directory this run may not use (locked by a live run, or holding an earlier run's outputs);
    ``str()`` is one line naming the directory and what to do."""


LOCK_NAME = ".run.lock"
# What a training run writes into its output directory (besides logs/): removed by --overwrite.
RUN_OUTPUT_FILES = ("training_metrics.json", "training_config.yaml", "findings.jsonl", "findings.md",
                    "final_evaluation.json", "final_evaluation.md", "training_results.png")


class OutputDirLock:
    """The held lock of one output directory; ``release()`` (idempotent) removes the lock file and unlocks."""

    def __init__(self, path: Path, fd: int):
        self.path, self._fd = path, fd

    def release(self) -> None:
        if self._fd is None:
            return
        self.path.unlink(missing_ok=True)  # unlink before unlocking: a waiter then sees a replaced file, not ours
        os.close(self._fd)
        self._fd = None


def _lock_holder(fd: int) -> str:
    """``pid N on HOST`` as written in an open lock file, or a placeholder when it is empty or unreadable."""
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        holder = json.loads(os.read(fd, 4096) or b"null")
        return f"pid {int(holder['pid'])} on {holder['host']}"
    except (ValueError, TypeError, KeyError, OSError):
        return "an unknown process"


def lock_output_dir(output_dir: Path) -> tuple[OutputDirLock, str | None]:
    """Take ``output_dir/.run.lock``: (the lock, a line to log when a killed run's lock was taken over).

    The lock is an exclusive ``flock`` on the file, which the kernel releases when its process exits in any way,
    so a lock file whose ``flock`` is free was left by a dead run. Raises OutputDirError while a live run holds it.
    """
    output_dir.mkdir(parents=True, exist_ok=True)
    path = output_dir / LOCK_NAME
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _lock_holder(fd)
            os.close(fd)
            raise OutputDirError(f"logging.output_dir: {output_dir} is in use by a running training run ({holder}; "
                                 f"lock file {path}); wait for it to end or choose another directory") from None
        try:
            same_file = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same_file = False
        if not same_file:  # the previous holder removed the file between our open and our flock: try again
            os.close(fd)
            continue
        previous = _lock_holder(fd) if os.fstat(fd).st_size else None
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname()}).encode())
        note = (f"{path}: took over the lock of {previous}, which is no longer running (killed without cleaning "
                f"up)") if previous else None
        return OutputDirLock(path, fd), note


def earlier_run_outputs(output_dir: Path) -> list[str]:
    """Names in ``output_dir`` written by an earlier run: checkpoints (and leftovers of their saves), the final
    model, the metrics file. Logs and a config alone are not a run's results (a run that failed to start)."""
    if not output_dir.is_dir():
        return []
    return sorted(p.name for p in output_dir.iterdir()
                  if _CHECKPOINT_RE.match(p.name) or _LEFTOVER_RE.match(p.name) or p.name == "final_model"
                  or p.name == "training_metrics.json")


def claim_output_dir(output_dir: Path, resume: bool, overwrite: bool,
                     tensorboard_dir: Path | None = None) -> tuple[OutputDirLock, str | None]:
    """Lock ``output_dir`` for this run and check a fresh run may write there (see the module docstring).

    Args:
        output_dir: ``logging.output_dir``.
        resume: the run continues from a checkpoint (``--resume``): the earlier outputs are its own history.
        overwrite: remove an earlier run's outputs (``RUN_OUTPUT_FILES``, checkpoints, ``final_model``, and the
            TensorBoard events when ``tensorboard_dir`` lies inside ``output_dir``) instead of refusing.
        tensorboard_dir: ``logging.tensorboard_dir``.

    Returns:
        The lock (release it when the run ends) and a line to log when a dead run's lock was taken over.

    Raises:
        OutputDirError: a live run holds the directory, or it holds an earlier run's outputs and neither
            ``resume`` nor ``overwrite`` is set. One line.
    """
    lock, note = lock_output_dir(output_dir)
    try:
        earlier = earlier_run_outputs(output_dir)
        if earlier and not resume and not overwrite:
            shown = ", ".join(earlier[:3]) + (f" and {len(earlier) - 3} more" if len(earlier) > 3 else "")
            raise OutputDirError(f"logging.output_dir: {output_dir} holds an earlier run's outputs ({shown}); "
                                 f"continue it with --resume latest, replace it with --overwrite, or choose "
                                 f"another directory")
        if earlier and overwrite and not resume:
            for name in earlier:
                if (output_dir / name).is_dir():
                    remove_directory(output_dir / name)
                else:
                    (output_dir / name).unlink(missing_ok=True)
            for name in RUN_OUTPUT_FILES:
                (output_dir / name).unlink(missing_ok=True)
            if tensorboard_dir is not None and tensorboard_dir.resolve().is_relative_to(output_dir.resolve()):
                for events in tensorboard_dir.glob("events.out.tfevents.*"):
                    events.unlink()
    except BaseException:
        lock.release()
        raise
    return lock, note


def carry_run_history(checkpoint: Path, output_dir: Path, epoch: int) -> list[str]:
    """Resuming ``checkpoint`` into another directory: copy the source run's per-epoch records up to ``epoch``
    (``training_metrics.json``, ``findings.jsonl``) into ``output_dir`` when it has none, so the new directory's
    metrics, plots and novelty archive continue the run. Returns the names copied."""
    source = checkpoint.resolve().parent
    if source == output_dir.resolve():
        return []
    copied = []
    for name in (METRICS_FILE, "findings.jsonl"):
        origin, target = source / name, output_dir / name
        if target.exists() or not origin.is_file():
            continue
        try:
            if name == METRICS_FILE:
                records = [r for r in read_metrics_history(origin) if r["epoch"] <= epoch]
                text = json.dumps(records, indent=1, default=float)
            else:
                lines = [line for line in origin.read_text().splitlines()
                         if line.strip() and json.loads(line).get("epoch", 0) <= epoch]
                text = "".join(line + "\n" for line in lines)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            logger.warning("not carrying %s over from %s: %s", name, source, str(exc).splitlines()[0])
            continue
        write_text_atomic(target, text)
        copied.append(name)
    return copied
