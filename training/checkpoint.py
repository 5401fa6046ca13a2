"""Atomic checkpoints and exact resume.

A checkpoint directory ``checkpoint-{epoch}/`` holds the policy (adapter or weights, ``value_head.safetensors``,
tokenizer), ``optimizer.pt``, ``buffer.json`` and ``trainer_state.json`` (epoch, KL coefficient, step count, every
RNG state, scheduler). It is written into a temporary directory and renamed into place, and the file
``COMPLETE`` is written last, so a crash mid-save never leaves a checkpoint that resume would pick up.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from training.buffers import DualReplayBuffer
from training.ppo import PPOTrainer

COMPLETE_MARKER = "COMPLETE"
_CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")


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
    target = output_dir / f"checkpoint-{epoch}"
    tmp = Path(tempfile.mkdtemp(prefix=f".checkpoint-{epoch}-", dir=output_dir))
    try:
        trainer.save_pretrained(tmp)
        trainer_state = trainer.state_dict()
        torch.save(trainer_state["optimizer"], tmp / "optimizer.pt")
        buffers.save(tmp / "buffer.json")
        state = {
            "epoch": epoch,
            "kl_coef": trainer_state["kl_coef"],
            "step_count": trainer_state["step_count"],
            "optimizer": "optimizer.pt",
            "scheduler": None,  # constant learning rate
            "trainer_rng": {"sample": _tensor_state(trainer_state["sample_rng"]),
                            "shuffle": _tensor_state(trainer_state["shuffle_rng"])},
            "rng": capture_rng_state(plan_rng),
        }
        (tmp / "trainer_state.json").write_text(json.dumps(state))
        (tmp / COMPLETE_MARKER).write_text(str(epoch))
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if keep:
        for old in list_checkpoints(output_dir)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    return target


def list_checkpoints(output_dir: Path) -> list[Path]:
    """Complete checkpoints, oldest first."""
    if not output_dir.exists():
        return []
    found = [(int(m[1]), p) for p in output_dir.iterdir() if (m := _CHECKPOINT_RE.match(p.name))
             and (p / COMPLETE_MARKER).exists()]
    return [p for _, p in sorted(found)]


def resolve_resume(resume: str, output_dir: Path) -> Path:
    """``latest`` -> the newest complete checkpoint in ``output_dir``; otherwise a checkpoint path."""
    if resume == "latest":
        checkpoints = list_checkpoints(output_dir)
        if not checkpoints:
            raise FileNotFoundError(f"--resume latest: no complete checkpoint in {output_dir}")
        return checkpoints[-1]
    path = Path(resume)
    if not (path / COMPLETE_MARKER).exists():
        raise FileNotFoundError(f"--resume: {path} is not a complete checkpoint")
    return path


def load_trainer_state(checkpoint: Path, trainer: PPOTrainer, buffers: DualReplayBuffer,
                       plan_rng: random.Random) -> int:
    """Restore optimizer, KL coefficient, RNGs and buffers; return the checkpoint's epoch."""
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    trainer.load_state_dict({
        "optimizer": torch.load(checkpoint / state["optimizer"], weights_only=False),
        "kl_coef": state["kl_coef"],
        "step_count": state["step_count"],
        "sample_rng": torch.tensor(state["trainer_rng"]["sample"], dtype=torch.uint8),
        "shuffle_rng": torch.tensor(state["trainer_rng"]["shuffle"], dtype=torch.uint8),
    })
    buffers.load(checkpoint / "buffer.json")
    restore_rng_state(state["rng"], plan_rng)
    return int(state["epoch"])
