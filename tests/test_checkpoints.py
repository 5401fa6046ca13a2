"""Issue 14, items 2 and 3, on real checkpoints of a tiny run: a save killed at any step leaves a checkpoint that
verifies; ``COMPLETE`` vouches for the bytes present; ``--resume latest`` falls back past broken checkpoints; a
checkpoint can neither run code nor name a file outside itself."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from agents.auto_user.model_files import write_manifest
from tests.conftest import REPO, train_command
from training import checkpoint as ckpt


def copy_run(run: Path, tmp_path: Path) -> Path:
    """checkpoint-1 and checkpoint-2 of the session's tiny run, in a private output dir."""
    out = tmp_path / "out"
    out.mkdir()
    for name in ("checkpoint-1", "checkpoint-2"):
        shutil.copytree(run / name, out / name)
    return out


def flip_bit(path: Path, offset_from_end: int = 5) -> None:
    data = bytearray(path.read_bytes())
    data[-offset_from_end] ^= 0x01  # a low mantissa bit: the file still parses, only the checksum can tell
    path.write_bytes(bytes(data))


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


# -- a save killed at each step ------------------------------------------------------------------------------------

SAVER = """
import os, random, signal, sys
from pathlib import Path
from accelerate import Accelerator
import training.checkpoint as ckpt
from training.buffers import DualReplayBuffer
from training.ppo import PolicyWithValueHead, PPOTrainer
from training.ppo.config import PPOConfig

src, out, kill_at = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
policy = PolicyWithValueHead.from_pretrained(src)
trainer = PPOTrainer(policy.model_config, PPOConfig(), policy=policy, accelerator=Accelerator(cpu=True))
buffers = DualReplayBuffer(64, 0.5, 0)
buffers.load(src / "buffer.json")

def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

if kill_at == "before-manifest":
    ckpt.write_manifest = die
else:
    real_replace, renames = os.replace, []
    def replace(a, b):
        real_replace(a, b)
        renames.append(b)
        if len(renames) == int(kill_at):
            die()
    os.replace = replace
ckpt.save_checkpoint(out, 1, trainer, buffers, random.Random(0))
print("saved without being killed")
"""


@pytest.mark.parametrize("kill_at", ["before-manifest", "1", "2"],
                         ids=["while-writing", "old-moved-aside", "new-in-place-old-not-deleted"])
def test_a_save_over_a_checkpoint_killed_at_any_step_leaves_one_that_verifies(tiny_two_epoch_run, tmp_path,
                                                                              kill_at) -> None:
    out = copy_run(tiny_two_epoch_run, tmp_path)
    before = (out / "checkpoint-1" / "COMPLETE").read_text()
    result = subprocess.run([sys.executable, "-c", SAVER, str(tiny_two_epoch_run / "checkpoint-1"), str(out), kill_at],
                            capture_output=True, text=True, timeout=300, cwd=REPO)
    assert result.returncode == -signal.SIGKILL, result.stderr[-3000:]
    hidden = sorted(p.name for p in out.iterdir() if p.name.startswith("."))
    assert hidden, "the killed save left no trace"  # the old copy (and maybe the new) was never deleted
    ckpt.recover_interrupted_saves(out)
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint-1", "checkpoint-2"]  # leftovers gone
    assert ckpt.verify_checkpoint(out / "checkpoint-1") is None
    assert ckpt.resolve_resume(str(out / "checkpoint-1"), out) == out / "checkpoint-1"
    if kill_at == "before-manifest":  # the new save never finished: the old checkpoint is untouched
        assert (out / "checkpoint-1" / "COMPLETE").read_text() == before


def test_a_save_without_a_kill_replaces_the_checkpoint_and_leaves_nothing_else(tiny_two_epoch_run,
                                                                               tmp_path) -> None:
    out = copy_run(tiny_two_epoch_run, tmp_path)
    (out / ".checkpoint-7-new-abc").mkdir()  # left by a save killed long ago
    result = subprocess.run([sys.executable, "-c", SAVER, str(tiny_two_epoch_run / "checkpoint-1"), str(out),
                             "99"], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert result.returncode == 0 and "saved without being killed" in result.stdout, result.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint-1", "checkpoint-2"]
    manifest = json.loads((out / "checkpoint-1" / "COMPLETE").read_text())
    assert manifest["epoch"] == 1 and "adapter_model.safetensors" in manifest["files"]
    assert ckpt.verify_checkpoint(out / "checkpoint-1") is None


# -- COMPLETE vouches for the files present ------------------------------------------------------------------------

BROKEN_CHECKPOINTS: list[tuple[str, Callable[[Path], None], str]] = [
    ("adapter deleted", lambda c: (c / "adapter_model.safetensors").unlink(), "adapter_model.safetensors is missing"),
    ("adapter truncated", lambda c: truncate(c / "adapter_model.safetensors"), "adapter_model.safetensors has"),
    ("adapter bit flipped", lambda c: flip_bit(c / "adapter_model.safetensors"), "adapter_model.safetensors does not"),
    ("value head deleted", lambda c: (c / "value_head.safetensors").unlink(), "value_head.safetensors is missing"),
    ("buffer deleted", lambda c: (c / "buffer.json").unlink(), "buffer.json is missing"),
    ("optimizer truncated", lambda c: truncate(c / "optimizer.pt"), "optimizer.pt has"),
    ("trainer state rewritten", lambda c: (c / "trainer_state.json").write_text("{}"), "trainer_state.json has"),
    ("manifest garbage", lambda c: (c / "COMPLETE").write_text("\x00garbage"), "COMPLETE is not a valid manifest"),
    ("manifest lists a file outside", lambda c: (c / "COMPLETE").write_text(json.dumps(
        {"format": 1, "files": {"../checkpoint-1/buffer.json": {"size": 1}}})), "outside"),
]


@pytest.mark.parametrize("corrupt, expected", [row[1:] for row in BROKEN_CHECKPOINTS],
                         ids=[row[0] for row in BROKEN_CHECKPOINTS])
def test_a_broken_checkpoint_is_refused_and_latest_falls_back(tiny_two_epoch_run, tmp_path, caplog, corrupt,
                                                              expected) -> None:
    out = copy_run(tiny_two_epoch_run, tmp_path)
    corrupt(out / "checkpoint-2")
    with pytest.raises(ckpt.CheckpointError, match=expected) as error:
        ckpt.resolve_resume(str(out / "checkpoint-2"), out)
    assert "\n" not in str(error.value)
    with caplog.at_level(logging.WARNING, logger="training.checkpoint"):
        assert ckpt.resolve_resume("latest", out) == out / "checkpoint-1"
    assert any("skipping checkpoint-2" in r.getMessage() and expected in r.getMessage() for r in caplog.records)


def test_latest_with_no_checkpoint_that_verifies_is_one_line(tiny_two_epoch_run, tmp_path) -> None:
    out = copy_run(tiny_two_epoch_run, tmp_path)
    for name in ("checkpoint-1", "checkpoint-2"):
        (out / name / "buffer.json").unlink()
    with pytest.raises(ckpt.CheckpointError, match="no checkpoint in .* verifies"):
        ckpt.resolve_resume("latest", out)


def test_a_checkpoint_with_an_old_style_marker_still_resumes(tiny_two_epoch_run, tmp_path) -> None:
    out = copy_run(tiny_two_epoch_run, tmp_path)
    (out / "checkpoint-2" / "COMPLETE").write_text("2")  # what earlier versions wrote
    assert ckpt.verify_checkpoint(out / "checkpoint-2") is None
    (out / "checkpoint-2" / "buffer.json").unlink()
    assert "buffer.json is missing" in ckpt.verify_checkpoint(out / "checkpoint-2")


def test_leftovers_of_killed_saves_are_cleaned_and_a_finished_one_restored(tiny_two_epoch_run, tmp_path) -> None:
    out = copy_run(tiny_two_epoch_run, tmp_path)
    (out / ".checkpoint-3-new-x1").mkdir()  # killed while writing: no manifest
    (out / ".checkpoint-3-new-x1" / "adapter_model.safetensors").write_bytes(b"partial")
    os.replace(out / "checkpoint-2", out / ".checkpoint-2-old-x2")  # killed between the two renames
    ckpt.recover_interrupted_saves(out)
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint-1", "checkpoint-2"]
    assert ckpt.resolve_resume("latest", out) == out / "checkpoint-2"


def test_resume_latest_with_a_gutted_newest_checkpoint_trains_on_from_the_previous(tiny_two_epoch_run, tmp_path,
                                                                                    template_db,
                                                                                    tiny_model_cache) -> None:
    """The reported state: COMPLETE beside a missing adapter and buffer. Before: a crash; now: a fallback."""
    out = copy_run(tiny_two_epoch_run, tmp_path)
    (out / "checkpoint-2" / "adapter_model.safetensors").unlink()
    (out / "checkpoint-2" / "buffer.json").unlink()
    result = subprocess.run(train_command(out, template_db, tiny_model_cache, "evaluation.eval_every=0")
                            + ["--resume", "latest"], capture_output=True, text=True, timeout=600, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "skipping checkpoint-2" in result.stderr and "continuing at epoch 2" in result.stderr
    assert "Traceback" not in result.stderr
    assert ckpt.verify_checkpoint(out / "checkpoint-2") is None  # epoch 2 trained again and saved whole
    assert ckpt.verify_checkpoint(out / "final_model") is None


# -- a checkpoint runs no code and names no file outside itself -----------------------------------------------------

class _Payload:
    """Unpickling this runs ``open(marker, "w")``: what a malicious optimizer.pt could do."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('pwned')",))


def _pickle_payload(checkpoint: Path, marker: Path) -> None:
    torch.save({"state": {}, "param_groups": [], "payload": _Payload(marker)}, checkpoint / "optimizer.pt")


def _optimizer_outside(checkpoint: Path, name: Callable[[Path], str]) -> None:
    outside = checkpoint.parent / "elsewhere" / "optimizer.pt"
    outside.parent.mkdir()
    shutil.copy(checkpoint / "optimizer.pt", outside)
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    state["optimizer"] = name(outside)
    (checkpoint / "trainer_state.json").write_text(json.dumps(state))


def _symlink_out(checkpoint: Path, file: str) -> None:
    outside = checkpoint.parent / f"outside-{file}"
    shutil.move(checkpoint / file, outside)
    (checkpoint / file).symlink_to(outside)


ATTACKS: list[tuple[str, Callable[[Path, Path], None], str]] = [
    ("pickle that runs code", _pickle_payload, "holds more than tensors"),
    ("optimizer path with ../", lambda c, m: _optimizer_outside(c, lambda p: "../elsewhere/optimizer.pt"),
     "points outside"),
    ("absolute optimizer path", lambda c, m: _optimizer_outside(c, str), "must be a file name inside"),
    ("optimizer.pt a symlink out", lambda c, m: _symlink_out(c, "optimizer.pt"), "outside"),
    ("trainer_state.json a symlink out", lambda c, m: _symlink_out(c, "trainer_state.json"), "outside"),
]


@pytest.mark.parametrize("attack, expected", [row[1:] for row in ATTACKS], ids=[row[0] for row in ATTACKS])
def test_a_hostile_checkpoint_is_refused_without_running_anything(tiny_two_epoch_run, tmp_path, attack,
                                                                  expected) -> None:
    """The attacker controls the whole directory, manifest included (re-signed after the change)."""
    out = copy_run(tiny_two_epoch_run, tmp_path)
    checkpoint, marker = out / "checkpoint-2", tmp_path / "pwned"
    attack(checkpoint, marker)
    write_manifest(checkpoint, {"epoch": 2})
    with pytest.raises(ckpt.CheckpointError, match=expected):
        ckpt.read_resume_state(ckpt.resolve_resume(str(checkpoint), out))
    assert not marker.exists()


def test_resume_of_a_hostile_checkpoint_exits_2_before_the_model_loads(tiny_two_epoch_run, tmp_path, template_db,
                                                                       tiny_model_cache) -> None:
    out = copy_run(tiny_two_epoch_run, tmp_path)
    marker = tmp_path / "pwned"
    _pickle_payload(out / "checkpoint-2", marker)
    write_manifest(out / "checkpoint-2", {"epoch": 2})
    result = subprocess.run(train_command(out, template_db, tiny_model_cache) + ["--resume", str(out / "checkpoint-2")],
                            capture_output=True, text=True, timeout=300, cwd=REPO)
    assert result.returncode == 2, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith("resume error:")]
    assert len(lines) == 1 and "optimizer.pt" in lines[0], result.stderr[-3000:]
    assert "Traceback" not in result.stderr and "policy base model" not in result.stderr
    assert not marker.exists()


def test_a_saved_checkpoint_has_no_scheduler_entry(tiny_two_epoch_run) -> None:
    state = json.loads((tiny_two_epoch_run / "checkpoint-2" / "trainer_state.json").read_text())
    assert "scheduler" not in state and state["optimizer"] == "optimizer.pt"


def test_the_training_log_times_each_update_phase(tiny_two_epoch_run) -> None:
    """Each epoch's log has a line with the update's samples per second and its phases, and says how many of the
    pre-update log-probs the sampling pass gave (the first epoch has no replay, so all of them or, where sampling
    runs in bf16, none)."""
    log = next((tiny_two_epoch_run / "logs").glob("ppo_training_*.log")).read_text()
    pattern = (r"epoch (\d) update \| (\d+) samples, [\d.]+/s \| old log-probs [\d.]+s \((\d+)% kept from sampling\) "
               r"\| reference [\d.]+s \| mini-batches [\d.]+s \| KL check [\d.]+s")
    lines = re.findall(pattern, log)
    assert [epoch for epoch, _, _ in lines] == ["1", "2"], log[-2000:]
    assert int(lines[0][1]) > 0 and lines[0][2] in ("100", "0")
