"""Issue 25: a training run's lifecycle on real tiny runs. The final table once; SIGTERM saves like Ctrl-C; a run owns
its output directory (lock, earlier outputs, resume into a new directory, an empty ``output_dir``, the workdir);
checkpoint values are checked; a corrupt adapter is one line; a full disk is one line and leaves the metrics whole."""

from __future__ import annotations

import errno
import json
import math
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agents.auto_user.model_files import write_manifest
from tests.conftest import REPO, train_command
from training import checkpoint as ckpt
from training import metrics as metrics_module
from training import output_dir


def one_line(stderr: str, prefix: str) -> str:
    """The single stderr line starting with ``prefix`` (asserting there is exactly one and no traceback)."""
    lines = [line for line in stderr.splitlines() if line.startswith(prefix)]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr[-3000:]
    return lines[0]


def run_train(out: Path, template_db: Path, cache: Path, *settings: str, args: tuple[str, ...] = (),
              timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(train_command(out, template_db, cache, *settings) + list(args), capture_output=True,
                          text=True, timeout=timeout, cwd=REPO)


@pytest.fixture(scope="module")
def finished(tmp_path_factory, template_db, tiny_model_cache) -> tuple[Path, subprocess.CompletedProcess]:
    """A finished 2-epoch run with the end-of-run comparison, whose ``environment.workdir`` held a user's
    ``episode-0.db`` and ``episode-1.db`` before it started."""
    out = tmp_path_factory.mktemp("finished") / "out"
    (out / "work").mkdir(parents=True)
    for name in ("episode-0.db", "episode-1.db"):
        (out / "work" / name).write_text(f"the user's own {name}")
    result = run_train(out, template_db, tiny_model_cache, "evaluation.eval_every=0",
                       "evaluation.final_comparison=2")
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result


def copy_checkpoints(run: Path, destination: Path) -> Path:
    destination.mkdir(parents=True)
    for name in ("checkpoint-1", "checkpoint-2", "training_metrics.json"):
        (shutil.copytree if (run / name).is_dir() else shutil.copy)(run / name, destination / name)
    return destination


# -- item 3: the final table once, no FutureWarning ----------------------------------------------------------------

def test_the_final_table_is_printed_once_and_no_future_warning(finished) -> None:
    _, result = finished
    both = result.stdout + result.stderr
    assert both.count("hallucinations / episode") == 1, both[-3000:]  # a row of the table
    assert "Base vs trained, 2 held-out objectives" in result.stdout
    assert "FutureWarning" not in result.stderr, result.stderr[-3000:]


# -- item 6: the output directory belongs to one run -----------------------------------------------------------------

def test_the_workdir_keeps_the_users_files_and_no_working_copy_is_left(finished) -> None:
    out, _ = finished
    for name in ("episode-0.db", "episode-1.db"):
        assert (out / "work" / name).read_text() == f"the user's own {name}"
    assert sorted(p.name for p in (out / "work").iterdir()) == ["episode-0.db", "episode-1.db"]


def test_a_finished_run_releases_its_lock(finished) -> None:
    out, _ = finished
    assert not (out / output_dir.LOCK_NAME).exists()


HOLD_LOCK = """
import sys, time
from pathlib import Path
from training.output_dir import lock_output_dir
lock, note = lock_output_dir(Path(sys.argv[1]))
print("locked", flush=True)
time.sleep(120)
"""


def hold_lock(out: Path) -> subprocess.Popen:
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(out)], stdout=subprocess.PIPE, text=True,
                              cwd=REPO)
    assert holder.stdout.readline().strip() == "locked"
    return holder


def test_a_second_live_run_into_the_directory_refuses_with_one_line(tmp_path, template_db, tiny_model_cache,
                                                                    capsys) -> None:
    from training.train_ppo import main

    out = tmp_path / "out"
    holder = hold_lock(out)
    try:
        code = main(train_command(out, template_db, tiny_model_cache)[2:])
        line = one_line(capsys.readouterr().err, "error:")
        assert code == 2 and "in use by a running training run" in line and f"pid {holder.pid}" in line, line
        assert sorted(p.name for p in out.iterdir()) == [output_dir.LOCK_NAME]  # nothing written: no logs, no config
    finally:
        holder.kill()
        holder.wait()


def test_the_lock_of_a_killed_run_is_taken_over_with_a_message(tmp_path) -> None:
    out = tmp_path / "out"
    holder = hold_lock(out)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert (out / output_dir.LOCK_NAME).exists()  # left behind by the killed process
    lock, note = output_dir.lock_output_dir(out)
    try:
        assert note is not None and f"pid {holder.pid}" in note and "no longer running" in note
        assert json.loads((out / output_dir.LOCK_NAME).read_text())["pid"] == os.getpid()
        with pytest.raises(output_dir.OutputDirError, match="in use by a running training run"):
            output_dir.lock_output_dir(out)  # held (by this process now)
    finally:
        lock.release()
    assert not (out / output_dir.LOCK_NAME).exists()
    second, note = output_dir.lock_output_dir(out)  # released cleanly: no takeover message
    second.release()
    assert note is None


def test_a_fresh_run_into_an_earlier_runs_directory_refuses(finished, tmp_path, template_db, tiny_model_cache,
                                                           capsys) -> None:
    from training.train_ppo import main

    out = copy_checkpoints(finished[0], tmp_path / "out")
    before = sorted(p.name for p in out.iterdir())
    code = main(train_command(out, template_db, tiny_model_cache)[2:])
    line = one_line(capsys.readouterr().err, "error:")
    assert code == 2 and "earlier run's outputs" in line and "--resume latest" in line and "--overwrite" in line
    assert sorted(p.name for p in out.iterdir()) == before  # nothing pruned, replaced or added; the lock released


def test_overwrite_starts_afresh_in_an_earlier_runs_directory(finished, tmp_path, template_db,
                                                              tiny_model_cache) -> None:
    out = copy_checkpoints(finished[0], tmp_path / "out")
    result = run_train(out, template_db, tiny_model_cache, "ppo.iterations=1", "evaluation.eval_every=0",
                       args=("--overwrite",))
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-1"]  # the old checkpoint-2 is gone
    assert [r["epoch"] for r in json.loads((out / "training_metrics.json").read_text())] == [1]
    assert ckpt.resolve_resume("latest", out) == out / "checkpoint-1"


def test_overwrite_is_documented_and_excludes_resume(capsys) -> None:
    from training.train_ppo import parse_args

    with pytest.raises(SystemExit):
        parse_args(["--help"])
    assert "--overwrite" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        parse_args(["--resume", "latest", "--overwrite"])


def test_resuming_a_finished_runs_checkpoint_into_a_new_directory_works(finished, tmp_path, template_db,
                                                                        tiny_model_cache) -> None:
    source, _ = finished
    out = tmp_path / "continued"
    result = run_train(out, template_db, tiny_model_cache, "ppo.iterations=3", "evaluation.eval_every=0",
                       args=("--resume", str(source / "checkpoint-2")))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "continuing at epoch 3" in result.stderr and "Traceback" not in result.stderr
    history = json.loads((out / "training_metrics.json").read_text())
    assert [r["epoch"] for r in history] == [1, 2, 3]  # the source run's epochs carried over, then epoch 3
    assert ckpt.verify_checkpoint(out / "final_model") is None and (out / "training_results.png").exists()
    assert sorted(p.name for p in source.glob("checkpoint-*")) == ["checkpoint-1", "checkpoint-2"]  # untouched


def test_an_empty_output_dir_is_a_config_error(tmp_path, template_db, tiny_model_cache, monkeypatch,
                                               capsys) -> None:
    from training.train_ppo import main

    monkeypatch.chdir(tmp_path)
    argv = train_command(tmp_path / "unused", template_db, tiny_model_cache)[2:] + ["--set", "logging.output_dir=\"\""]
    assert main(argv) == 2
    line = one_line(capsys.readouterr().err, "config error:")
    assert "logging.output_dir" in line and "''" in line
    assert list(tmp_path.iterdir()) == []  # nothing written into the current directory


# -- item 5: SIGTERM saves and exits like Ctrl-C -----------------------------------------------------------------

@pytest.mark.parametrize("launcher", ["train_ppo.py", "run_training.sh"])
def test_sigterm_saves_a_resumable_checkpoint_and_exits_143(tmp_path, template_db, tiny_model_cache,
                                                             launcher) -> None:
    """Through the README's main command too: the wrapper must hand the signal to the run, not swallow it."""
    out, log = tmp_path / "terminated", tmp_path / "stderr.txt"
    command = train_command(out, template_db, tiny_model_cache, "ppo.iterations=50", "evaluation.eval_every=0")
    env = dict(os.environ)
    if launcher == "run_training.sh":  # the same settings, passed the way a user passes them to the wrapper
        env["CONFIG"] = command[command.index("--config") + 1]
        command = ["bash", str(REPO / "training" / "run_training.sh"), *command[command.index("--config") + 2:]]
    with log.open("w") as stderr_file:  # a file, not a pipe: an undrained pipe would block the run while we wait
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr_file, cwd=REPO, env=env)
        deadline = time.time() + 400
        while not (out / "checkpoint-1" / "COMPLETE").exists() and time.time() < deadline \
                and process.poll() is None:
            time.sleep(0.05)
        assert (out / "checkpoint-1" / "COMPLETE").exists(), log.read_text()[-3000:]  # training is under way
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=180)
    stderr = log.read_text()
    assert process.returncode == 128 + signal.SIGTERM, stderr[-3000:]
    assert "SIGTERM: stopping at the next safe point" in stderr and "Traceback" not in stderr
    assert "saved checkpoint-" in stderr and "--resume latest" in one_line(stderr, "stopped by SIGTERM")
    latest = ckpt.resolve_resume("latest", out)
    state = ckpt.read_resume_state(latest)["state"]
    assert state["epoch"] >= 1 and latest.name == f"checkpoint-{state['epoch']}"
    assert [r["epoch"] for r in json.loads((out / "training_metrics.json").read_text())][-1] >= state["epoch"]
    assert not (out / "final_model").exists() and not (out / output_dir.LOCK_NAME).exists()


# -- item 7: checkpoint values -----------------------------------------------------------------------------------

BAD_STATES = [
    ("kl_coef", float("nan"), "kl_coef must be a finite number >= 0"),
    ("kl_coef", -0.1, "kl_coef must be a finite number >= 0"),
    ("kl_coef", "0.2", "kl_coef must be a finite number >= 0"),
    ("epoch", -5, "epoch must be a whole number >= 0"),
    ("epoch", 1.5, "epoch must be a whole number >= 0"),
    ("epoch", True, "epoch must be a whole number >= 0"),
    ("epoch", 7, "but the directory is checkpoint-2"),
    ("step_count", -1, "step_count must be a whole number >= 0"),
    ("trainer_rng", {"sample": [300], "shuffle": [1]}, "trainer_rng.sample must be a list of bytes"),
    ("rng", [], "rng must be a mapping"),
]


def with_state(checkpoint: Path, key: str, value) -> None:
    """Set one key of ``trainer_state.json`` and re-sign the manifest (the manifest vouches for bytes, not values)."""
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    state[key] = value
    (checkpoint / "trainer_state.json").write_text(json.dumps(state))
    write_manifest(checkpoint, {"epoch": 2})


@pytest.mark.parametrize("key, value, expected", BAD_STATES, ids=[f"{k}={v!r}" for k, v, _ in BAD_STATES])
def test_bad_trainer_state_values_are_refused_naming_the_file_and_key(finished, tmp_path, key, value,
                                                                     expected) -> None:
    out = copy_checkpoints(finished[0], tmp_path / "out")
    with_state(out / "checkpoint-2", key, value)
    with pytest.raises(ckpt.CheckpointError) as raised:
        ckpt.read_resume_state(ckpt.resolve_resume("latest", out))
    message = str(raised.value)
    assert expected in message and "trainer_state.json" in message and "\n" not in message


def test_resume_of_a_nan_kl_coefficient_exits_2_before_the_model_loads(finished, tmp_path, template_db,
                                                                      tiny_model_cache) -> None:
    out = copy_checkpoints(finished[0], tmp_path / "out")
    with_state(out / "checkpoint-2", "kl_coef", float("nan"))
    result = run_train(out, template_db, tiny_model_cache, args=("--resume", "latest"), timeout=120)
    assert result.returncode == 2
    assert "kl_coef" in one_line(result.stderr, "resume error:") and "policy base model" not in result.stderr


def test_the_refusal_of_a_pickle_is_our_own_line(finished, tmp_path) -> None:
    import torch

    out = copy_checkpoints(finished[0], tmp_path / "out")
    torch.save({"state": {}, "param_groups": [], "x": math.gcd}, out / "checkpoint-2" / "optimizer.pt")
    write_manifest(out / "checkpoint-2", {"epoch": 2})
    with pytest.raises(ckpt.CheckpointError) as raised:
        ckpt.read_resume_state(out / "checkpoint-2")
    message = str(raised.value)
    assert "optimizer.pt holds more than tensors" in message and "\n" not in message
    for invitation in ("weights_only", "succeed", "can still be loaded", "\x1b["):  # torch's advice and its ANSI bold
        assert invitation not in message, message


def flip_exponent_bit(adapter: Path) -> None:
    """Flip the highest exponent bit of the first float32 of a LoRA A matrix (never 0: x becomes x * 2**128)."""
    data = bytearray(adapter.read_bytes())
    header_size = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + header_size])
    first = min(meta["data_offsets"][0] for name, meta in header.items() if "lora_A" in name)
    data[8 + header_size + first + 3] ^= 0x40
    adapter.write_bytes(bytes(data))


@pytest.fixture
def corrupt_checkpoint(finished, tmp_path) -> Path:
    """A copy of checkpoint-2 with an old-style ``COMPLETE`` (no checksums) and a bit-flipped adapter."""
    out = copy_checkpoints(finished[0], tmp_path / "out")
    checkpoint = out / "checkpoint-2"
    (checkpoint / "COMPLETE").write_text("2")
    flip_exponent_bit(checkpoint / "adapter_model.safetensors")
    return checkpoint


def test_resume_of_a_bit_flipped_adapter_is_one_line(corrupt_checkpoint, template_db, tiny_model_cache) -> None:
    result = run_train(corrupt_checkpoint.parent, template_db, tiny_model_cache,
                       args=("--resume", str(corrupt_checkpoint)), timeout=180)
    assert result.returncode == 2, result.stderr[-3000:]
    line = one_line(result.stderr, "model error:")
    assert "adapter_model.safetensors" in line and "far beyond any trained weight" in line


def test_evaluating_a_bit_flipped_adapter_is_one_line(corrupt_checkpoint, template_db, tiny_model_cache,
                                                      tmp_path) -> None:
    command = [sys.executable, str(REPO / "training" / "evaluate.py"), "--model", str(corrupt_checkpoint),
               "--config", str(REPO / "configs" / "tiny_test.yaml"), "--episodes", "2", "--out",
               str(tmp_path / "report"), "--set", f"environment.db_path={template_db}", "--set",
               f"environment.workdir={tmp_path / 'work'}", "--set", f"model.model_cache_dir={tiny_model_cache}"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=180, cwd=REPO)
    assert result.returncode == 2, result.stderr[-3000:]
    assert "adapter_model.safetensors" in one_line(result.stderr, "model error:")


# -- item 8: a full disk while writing the metrics ------------------------------------------------------------------

def test_a_full_disk_leaves_the_metrics_file_as_it_was_and_no_temp_file(tmp_path, monkeypatch) -> None:
    path = tmp_path / metrics_module.METRICS_FILE
    metrics_module.record_epoch_metrics(path, {"epoch": 1, "env/reward_mean": 0.5})
    before = path.read_bytes()
    real_write = os.write

    def write_half_then_fill_the_disk(fd: int, data) -> int:
        real_write(fd, bytes(data[: len(data) // 2]))  # what the disk took before it was full
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(metrics_module.os, "write", write_half_then_fill_the_disk)
    with pytest.raises(OSError) as raised:
        metrics_module.record_epoch_metrics(path, {"epoch": 2, "env/reward_mean": 0.7, "padding": "x" * 10_000})
    monkeypatch.undo()
    assert raised.value.errno == errno.ENOSPC and raised.value.filename == str(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [metrics_module.METRICS_FILE]


FULL_DISK_RUN = """
import errno, os, sys
import training.metrics as metrics
real, calls = metrics._write_fully, []

def fill_the_disk_at_epoch_2(fd, data):
    calls.append(fd)
    if len(calls) == 2:  # the second epoch's metrics: half written, then the disk is full
        real(fd, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    real(fd, data)

metrics._write_fully = fill_the_disk_at_epoch_2
from training.train_ppo import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_full_disk_during_training_is_one_line_and_the_checkpoint_stays_valid(tmp_path, template_db,
                                                                               tiny_model_cache) -> None:
    out = tmp_path / "full"
    command = [sys.executable, "-c", FULL_DISK_RUN, *train_command(out, template_db, tiny_model_cache,
                                                                   "evaluation.eval_every=0")[2:]]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=REPO)
    assert result.returncode == 4, result.stderr[-3000:]
    line = one_line(result.stderr, "error:")
    assert "No space left on device" in line and "training_metrics.json" in line and "--resume latest" in line
    assert [r["epoch"] for r in json.loads((out / "training_metrics.json").read_text())] == [1]
    assert not list(out.glob(".training_metrics.json*")) and not (out / output_dir.LOCK_NAME).exists()
    assert ckpt.resolve_resume("latest", out) == out / "checkpoint-1"
