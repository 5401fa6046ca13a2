"""Issue 14, item 8: every kind of broken model directory gives one line naming the file, from ``evaluate.py`` and
from ``AutoUserAgent.initialize_model()``, and corrupted weights are caught before anything is sampled."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import REPO


def _nan_in_first_tensor(path: Path) -> None:
    """Overwrite the first float32 of a safetensors file with NaN (what a flipped exponent bit can produce)."""
    data = bytearray(path.read_bytes())
    start = 8 + struct.unpack("<Q", data[:8])[0]
    data[start:start + 4] = struct.pack("<f", float("nan"))
    path.write_bytes(bytes(data))


def _empty(d: Path) -> None:
    shutil.rmtree(d)
    d.mkdir()


def _a_file(d: Path) -> None:
    shutil.rmtree(d)
    d.write_text("not a model\n")


def _edit_policy_config(d: Path, edit: Callable[[dict], None]) -> None:
    meta = json.loads((d / "policy_config.json").read_text())
    edit(meta)
    (d / "policy_config.json").write_text(json.dumps(meta))


def _plain_model_with_garbage_config(d: Path) -> None:
    _empty(d)
    (d / "config.json").write_text("{ not json")


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


BROKEN_DIRS: list[tuple[str, Callable[[Path], None], str]] = [
    ("empty", _empty, "is not a model directory"),
    ("a file", _a_file, "is a file, not a model directory"),
    ("adapter truncated", lambda d: _truncate(d / "adapter_model.safetensors"), "adapter_model.safetensors"),
    ("adapter deleted", lambda d: (d / "adapter_model.safetensors").unlink(), "adapter_model.safetensors"),
    ("adapter holds NaN", lambda d: _nan_in_first_tensor(d / "adapter_model.safetensors"),
     "adapter_model.safetensors"),
    ("adapter config garbage", lambda d: (d / "adapter_config.json").write_text("]["), "adapter_config.json"),
    ("policy config garbage", lambda d: (d / "policy_config.json").write_bytes(b"\xff\xfe garbage"),
     "policy_config.json"),
    ("policy config without keys", lambda d: (d / "policy_config.json").write_text("{}"), "policy_config.json"),
    ("tokenizer.json garbage", lambda d: (d / "tokenizer.json").write_text("{{{"), "tokenizer.json"),
    ("tokenizer config garbage", lambda d: (d / "tokenizer_config.json").write_text("nope"), "tokenizer_config.json"),
    ("base model moved", lambda d: _edit_policy_config(d, lambda m: m["model_config"].update(
        base_model=str(d.parent / "moved-away" / "tiny-gpt2"))), "policy_config.json"),
    ("plain model, garbage config.json", _plain_model_with_garbage_config, "config.json"),
]
MODES = ["with manifest", "without manifest"]  # as saved (COMPLETE vouches for the files), or copied without it


def broken_copy(run: Path, tmp_path: Path, corrupt: Callable[[Path], None], mode: str) -> Path:
    model = tmp_path / "final_model"
    shutil.copytree(run / "final_model", model)
    if mode == "without manifest":
        (model / "COMPLETE").unlink()  # so each deeper check is reached on its own
    corrupt(model)
    return model


CASES = [pytest.param(corrupt, expected, mode, id=f"{name}, {mode}") for name, corrupt, expected in BROKEN_DIRS
         for mode in MODES]


@pytest.mark.parametrize("corrupt, expected, mode", CASES)
def test_evaluate_on_a_broken_model_dir_exits_2_with_one_line(tiny_two_epoch_run, tmp_path, template_db,
                                                              tiny_model_cache, capsys, corrupt, expected,
                                                              mode) -> None:
    from training.evaluate import main

    model = broken_copy(tiny_two_epoch_run, tmp_path, corrupt, mode)
    code = main(["--model", str(model), "--config", str(REPO / "configs" / "tiny_test.yaml"), "--episodes", "1",
                 "--seeds", "1", "--out", str(tmp_path / "report"), "--set", f"environment.db_path={template_db}",
                 "--set", f"model.model_cache_dir={tiny_model_cache}"])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()
             and not line.startswith("Loading weights")]  # transformers' progress bar, not an error
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith("model error: ") and expected in lines[0] and str(model) in lines[0], lines
    assert not (tmp_path / "report").exists()


@pytest.mark.parametrize("corrupt, expected, mode", CASES)
def test_auto_user_agent_on_a_broken_model_dir_raises_one_line(tiny_two_epoch_run, tmp_path, corrupt, expected,
                                                               mode) -> None:
    from agents.auto_user import AutoUserAgent, AutoUserConfig
    from agents.auto_user.models import ModelUnavailableError

    model = broken_copy(tiny_two_epoch_run, tmp_path, corrupt, mode)
    agent = AutoUserAgent(AutoUserConfig(model_name=str(model), device="cpu"))
    with pytest.raises(ModelUnavailableError) as error:
        agent.initialize_model()
    message = str(error.value)
    assert "\n" not in message and expected in message and str(model) in message, message
    assert agent.model is None  # nothing to sample from


def test_a_missing_nested_path_is_not_mistaken_for_a_hub_id(tmp_path) -> None:
    from agents.auto_user import AutoUserAgent, AutoUserConfig
    from agents.auto_user.models import ModelUnavailableError

    agent = AutoUserAgent(AutoUserConfig(model_name="runs/today/final_model", device="cpu"))
    with pytest.raises(ModelUnavailableError, match="no such directory runs/today/final_model"):
        agent.initialize_model()


def test_resuming_from_a_checkpoint_with_nan_weights_is_refused(tiny_two_epoch_run, tmp_path) -> None:
    from agents.auto_user.model_files import ModelFileError
    from training.ppo import PolicyWithValueHead

    checkpoint = tmp_path / "checkpoint-2"
    shutil.copytree(tiny_two_epoch_run / "checkpoint-2", checkpoint)
    (checkpoint / "COMPLETE").unlink()
    _nan_in_first_tensor(checkpoint / "value_head.safetensors")
    with pytest.raises(ModelFileError, match=r"value_head\.\w+ holds NaN or inf \(corrupted value_head.safetensors\)"):
        PolicyWithValueHead.from_pretrained(checkpoint)


def test_evaluate_command_line_on_a_corrupted_adapter(tiny_two_epoch_run, tmp_path, template_db,
                                                      tiny_model_cache) -> None:
    model = broken_copy(tiny_two_epoch_run, tmp_path, lambda d: _nan_in_first_tensor(d / "adapter_model.safetensors"),
                        "without manifest")
    result = subprocess.run([sys.executable, str(REPO / "training" / "evaluate.py"), "--model", str(model),
                             "--config", str(REPO / "configs" / "tiny_test.yaml"), "--episodes", "1", "--seeds", "1",
                             "--out", str(tmp_path / "report"), "--set", f"environment.db_path={template_db}",
                             "--set", f"model.model_cache_dir={tiny_model_cache}"],
                            capture_output=True, text=True, timeout=300, cwd=REPO)
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("model error: ")
    assert "holds NaN or inf" in result.stderr
