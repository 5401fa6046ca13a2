"""Atomic, verifiable checkpoints and exact resume.

A checkpoint directory ``checkpoint-{epoch}/`` holds the policy (adapter or weights, ``value_head.safetensors``,
tokenizer), ``optimizer.pt`` (tensors only, read with ``weights_only=True``), ``buffer.json`` and
``trainer_state.json`` (epoch, KL coefficient, step count, every RNG state). It is written into a hidden temporary
directory whose last file, ``COMPLETE``, is a manifest of every other file's name, size and SHA-256; then it is
renamed into place. Saving over an existing ``checkpoint-N`` first renames the old one aside and deletes it only
once the new one is in place, so a kill at any moment leaves a checkpoint that verifies: the next save or resume
(``recover_interrupted_saves``) puts a verified leftover back in place and removes the rest. ``--resume latest``
takes the newest checkpoint that verifies and says which it skipped; every file a checkpoint names must lie inside
it, and nothing in it is unpickled as code; its values (epoch, step count, KL coefficient, RNG states) are checked
before a model loads.
"""

from __future__ import annotations

import json
import logging
import math
import os
import pickle
import random
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agents.auto_user.model_files import (
    MANIFEST_NAME,
    POLICY_CONFIG_NAME,
    VALUE_HEAD_NAME,
    ModelFileError,
    confined,
    read_json,
    verify_manifest,
    write_manifest,
)
from training.buffers import DualReplayBuffer
from training.ppo import PPOTrainer

logger = logging.getLogger(__name__)

COMPLETE_MARKER = MANIFEST_NAME
_CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
# A save in progress (new), or the copy it replaces (old), of checkpoint-N or final_model.
_LEFTOVER_RE = re.compile(r"^\.(checkpoint-\d+|final_model)-(new|old)-")
REQUIRED_FILES = ("trainer_state.json", "buffer.json", POLICY_CONFIG_NAME, VALUE_HEAD_NAME)


class CheckpointError(ValueError):
    """A checkpoint that cannot be resumed; ``str()`` is one line naming the checkpoint or file."""


def _tensor_state(state: torch.Tensor) -> list[int]:
    return state.tolist()


def capture_rng_state(plan_rng: random.Random) -> dict[str, Any]:
    version, internal, gauss = random.getstate()
    plan_version, plan_internal, plan_gauss = plan_rng.getstate()
    numpy_state = np.random.get_state()
    return {
        "python": [version, list(internal), gauss],
        "episode_plan": [plan_version, list(plan_internal), plan_gauss],
        "numpy": [numpy_state[0], numpy_state[1].tolist(), *numpy_state[2:]],
        "torch": _tensor_state(torch.get_rng_state()),
    }


def restore_rng_state(state: dict[str, Any], plan_rng: random.Random) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    version, internal, gauss = state["episode_plan"]
    plan_rng.setstate((version, tuple(internal), gauss))
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), *rest))
    torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))


def save_checkpoint(output_dir: Path, epoch: int, trainer: PPOTrainer, buffers: DualReplayBuffer,
                    plan_rng: random.Random, keep: int = 0) -> Path:
    """Write ``output_dir/checkpoint-{epoch}`` atomically; prune to the newest ``keep`` (0 keeps all)."""
    output_dir.mkdir(parents=True, exist_ok=True)
    recover_interrupted_saves(output_dir)

    def write(tmp: Path) -> None:
        trainer.save_pretrained(tmp)
        trainer_state = trainer.state_dict()
        torch.save(trainer_state["optimizer"], tmp / "optimizer.pt")
        buffers.save(tmp / "buffer.json")
        state = {
            "epoch": epoch,
            "kl_coef": trainer_state["kl_coef"],
            "step_count": trainer_state["step_count"],
            "optimizer": "optimizer.pt",
            "trainer_rng": {"sample": _tensor_state(trainer_state["sample_rng"]),
                            "shuffle": _tensor_state(trainer_state["shuffle_rng"])},
            "rng": capture_rng_state(plan_rng),
        }
        (tmp / "trainer_state.json").write_text(json.dumps(state))

    target = save_directory(output_dir / f"checkpoint-{epoch}", write, {"epoch": epoch})
    if keep:
        for old in list_checkpoints(output_dir)[:-keep]:
            remove_directory(old)
    return target


def remove_directory(path: Path) -> None:
    """Delete a saved directory, its ``COMPLETE`` first: a kill midway never leaves it marked complete."""
    (path / COMPLETE_MARKER).unlink(missing_ok=True)
    shutil.rmtree(path, ignore_errors=True)


def save_directory(target: Path, write, manifest_extra: dict[str, Any] | None = None) -> Path:
    """Fill a hidden temp dir beside ``target`` with ``write(tmp)``, add the ``COMPLETE`` manifest, and move it
    to ``target``. An existing ``target`` is moved aside first and deleted only once the new one is in place."""
    prefix = f".{target.name}"  # matched by _LEFTOVER_RE
    tmp = Path(tempfile.mkdtemp(prefix=f"{prefix}-new-", dir=target.parent))
    try:
        write(tmp)
        write_manifest(tmp, manifest_extra)
        if target.exists():
            aside = Path(tempfile.mkdtemp(prefix=f"{prefix}-old-", dir=target.parent))
            os.replace(target, aside)  # a kill from here to the next line leaves both copies, hidden: see recover
            os.replace(tmp, target)
            remove_directory(aside)
        else:
            os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def verify_checkpoint(path: Path) -> str | None:
    """``None`` when ``path`` is a checkpoint whose manifest vouches for its files, else one line why not."""
    if not path.is_dir():
        return f"{path} is not a directory"
    return verify_manifest(path, legacy_required=REQUIRED_FILES)


def recover_interrupted_saves(output_dir: Path) -> None:
    """Clean up after a save that was killed: a verified leftover (the new copy, else the old one) goes back to
    ``checkpoint-N`` (or ``final_model``) when that is missing or broken; every other leftover is deleted. Main
    process only."""
    if not output_dir.is_dir():
        return
    leftovers = sorted((p for p in output_dir.iterdir() if p.is_dir() and _LEFTOVER_RE.match(p.name)),
                       key=lambda p: _LEFTOVER_RE.match(p.name)[2] != "new")  # a finished new copy wins
    for leftover in leftovers:
        target = output_dir / _LEFTOVER_RE.match(leftover.name)[1]
        if verify_checkpoint(leftover) is None and (not target.exists() or verify_checkpoint(target) is not None):
            if target.exists():
                remove_directory(target)
            os.replace(leftover, target)
            logger.warning("restored %s from %s, left by an interrupted save", target.name, leftover.name)
        else:
            remove_directory(leftover)


def list_checkpoints(output_dir: Path) -> list[Path]:
    """Checkpoints marked complete (not yet verified), oldest first."""
    if not output_dir.exists():
        return []
    found = [(int(m[1]), p) for p in output_dir.iterdir() if (m := _CHECKPOINT_RE.match(p.name))
             and (p / COMPLETE_MARKER).exists()]
    return [p for _, p in sorted(found)]


def resolve_resume(resume: str, output_dir: Path) -> Path:
    """``latest`` -> the newest checkpoint in ``output_dir`` that verifies (saying which were skipped); otherwise
    a checkpoint path, which must verify. Raises CheckpointError."""
    if resume == "latest":
        checkpoints = list_checkpoints(output_dir)
        for path in reversed(checkpoints):
            problem = verify_checkpoint(path)
            if problem is None:
                return path
            logger.warning("--resume latest: skipping %s: %s", path.name, problem)
        if checkpoints:
            raise CheckpointError(f"--resume latest: no checkpoint in {output_dir} verifies "
                                  f"({len(checkpoints)} failed; see the lines above)")
        raise CheckpointError(f"--resume latest: no complete checkpoint in {output_dir}")
    path = Path(resume)
    if not path.exists():
        raise CheckpointError(f"--resume: no such checkpoint directory {path}")
    if not (path / COMPLETE_MARKER).exists() and path.is_dir():
        raise CheckpointError(f"--resume: {path} is not a complete checkpoint (no {COMPLETE_MARKER})")
    problem = verify_checkpoint(path)
    if problem:
        raise CheckpointError(f"--resume: {problem}")
    return path


def read_resume_state(checkpoint: Path) -> dict[str, Any]:
    """Everything ``apply_resume_state`` needs, read and checked before any model loads.

    Files are confined to the checkpoint directory (no ``..``, absolute paths or symlinks out), the optimizer
    state is read with ``weights_only=True`` (tensors and plain containers only), and the JSON files must have the
    expected keys. Raises CheckpointError with one line.
    """
    try:
        state = read_json(confined(checkpoint, "trainer_state.json", "trainer_state.json"))
        if not isinstance(state, dict):
            raise CheckpointError(f"{checkpoint / 'trainer_state.json'} is not a JSON object")
        optimizer_path = confined(checkpoint, state.get("optimizer", "optimizer.pt"),
                                  "trainer_state.json's 'optimizer'")
        buffer = read_json(confined(checkpoint, "buffer.json", "buffer.json"))
    except ModelFileError as exc:
        raise CheckpointError(str(exc)) from None
    missing = [key for key in ("epoch", "kl_coef", "step_count", "trainer_rng", "rng") if key not in state]
    if missing:
        raise CheckpointError(f"{checkpoint / 'trainer_state.json'} lacks {', '.join(missing)}")
    check_trainer_state(state, checkpoint / "trainer_state.json")
    try:
        optimizer = torch.load(optimizer_path, weights_only=True, map_location="cpu")
    except FileNotFoundError:
        raise CheckpointError(f"{optimizer_path} is missing") from None
    except pickle.UnpicklingError:  # torch's text suggests weights_only=False, i.e. running the file's code: not ours
        raise CheckpointError(f"{optimizer_path} holds more than tensors and plain data (pickled Python objects); "
                              f"refusing to load it: a checkpoint written by training holds only tensors") from None
    except Exception as exc:  # truncated or not a torch file at all
        raise CheckpointError(f"{optimizer_path} is not a readable optimizer state ({type(exc).__name__}: "
                              f"{(str(exc).strip().splitlines() or [''])[0]})") from None
    return {"state": state, "optimizer": optimizer, "buffer": buffer, "path": checkpoint}


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def check_trainer_state(state: dict[str, Any], path: Path) -> None:
    """Check the values of ``trainer_state.json`` that JSON cannot type; CheckpointError naming the key otherwise.

    A NaN KL coefficient would make every update's KL penalty NaN (the update guard then rolls each one back,
    silently); a negative epoch would train epochs below 1 and write checkpoints that pruning never reaches.
    """
    for key in ("epoch", "step_count"):
        if not _is_count(state[key]):
            raise CheckpointError(f"{path}: {key} must be a whole number >= 0, got {state[key]!r}")
    match = _CHECKPOINT_RE.match(path.parent.name)
    if match and int(match[1]) != state["epoch"]:
        raise CheckpointError(f"{path}: epoch is {state['epoch']!r} but the directory is {path.parent.name}")
    kl_coef = state["kl_coef"]
    if isinstance(kl_coef, bool) or not isinstance(kl_coef, int | float) or not math.isfinite(kl_coef) \
            or kl_coef < 0:
        raise CheckpointError(f"{path}: kl_coef must be a finite number >= 0, got {kl_coef!r}")
    rngs = state["trainer_rng"]
    for name in ("sample", "shuffle"):
        generator = rngs.get(name) if isinstance(rngs, dict) else None
        if not isinstance(generator, list) or not generator or \
                not all(isinstance(b, int) and not isinstance(b, bool) and 0 <= b <= 255 for b in generator):
            raise CheckpointError(f"{path}: trainer_rng.{name} must be a list of bytes (0-255), got "
                                  f"{str(generator)[:40]!r}")
    if not isinstance(state["rng"], dict):
        raise CheckpointError(f"{path}: rng must be a mapping of RNG states, got {type(state['rng']).__name__}")


def apply_resume_state(resume: dict[str, Any], trainer: PPOTrainer, buffers: DualReplayBuffer,
                       plan_rng: random.Random) -> int:
    """Restore optimizer, KL coefficient, RNGs and buffers read by ``read_resume_state``; the checkpoint's epoch."""
    state = resume["state"]
    try:
        trainer.load_state_dict({
            "optimizer": resume["optimizer"],
            "kl_coef": state["kl_coef"],
            "step_count": state["step_count"],
            "sample_rng": torch.tensor(state["trainer_rng"]["sample"], dtype=torch.uint8),
            "shuffle_rng": torch.tensor(state["trainer_rng"]["shuffle"], dtype=torch.uint8),
        })
        buffers.load_state_dict(resume["buffer"])
        restore_rng_state(state["rng"], plan_rng)
        return int(state["epoch"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{resume['path']}: the saved trainer state does not fit this run "
                              f"({type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0]})") from None
