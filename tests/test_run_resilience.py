"""Issue 14, items 1 and 6, on real training runs: an agent backend that is down, and Ctrl-C during the update or
the evaluation."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time

import pytest

from tests.conftest import REPO, train_command
from training import checkpoint as ckpt


def unreachable_agent() -> list[str]:
    """Settings of an openai-backend booking agent whose server refuses connections (the one place naming them)."""
    with socket.socket() as probe:  # a port that was free a moment ago: connecting to it is refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    openai = "environment.agent.openai"
    return ["environment.agent.backend=openai", f"{openai}.base_url=http://127.0.0.1:{port}/v1",
            f"{openai}.timeout_seconds=2", f"{openai}.max_retries=1"]


def test_every_episode_failing_skips_the_update_then_stops_with_one_line(tmp_path, template_db,
                                                                        tiny_model_cache) -> None:
    out = tmp_path / "down"
    command = train_command(out, template_db, tiny_model_cache, *unreachable_agent(), "ppo.iterations=5",
                            "ppo.max_failed_epochs=2")
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=REPO)
    assert result.returncode == 3, result.stderr[-3000:]
    assert "Traceback" not in result.stderr and "must be non-empty" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "backend looks down" in errors[0] and "checkpoint-2" in errors[0], errors
    history = json.loads((out / "training_metrics.json").read_text())
    assert [record["epoch"] for record in history] == [1, 2]  # stopped after 2 failed epochs, not 5
    for record in history:
        assert record["env/errors"] == 2 and record["env/episodes"] == 0 and record["update/skipped"] == 1
        assert "connection failed" in record["last_error"]
    assert ckpt.verify_checkpoint(out / "checkpoint-2") is None and not (out / "final_model").exists()
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(out / "tb"))
    events.Reload()
    assert [(e.step, e.value) for e in events.Scalars("env/errors")] == [(1, 2.0), (2, 2.0)]


def test_failed_epochs_below_the_limit_do_not_stop_the_run(tmp_path, template_db, tiny_model_cache) -> None:
    out = tmp_path / "flaky"
    command = train_command(out, template_db, tiny_model_cache, *unreachable_agent(), "ppo.iterations=2",
                            "ppo.max_failed_epochs=3")
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr and "update skipped" in result.stderr
    assert [r["epoch"] for r in json.loads((out / "training_metrics.json").read_text())] == [1, 2]
    assert ckpt.verify_checkpoint(out / "final_model") is None


@pytest.mark.parametrize("phase, marker", [("update", "PPO update on"), ("evaluation", "evaluating on")])
def test_ctrl_c_during_the_update_or_the_evaluation_saves_the_epoch_and_exits_0(tmp_path, template_db,
                                                                               tiny_model_cache, phase,
                                                                               marker) -> None:
    out = tmp_path / phase
    # Evaluation after every epoch, on 40 held-out objectives, and a longer update: both last long enough to hit.
    command = train_command(out, template_db, tiny_model_cache, "ppo.iterations=20", "ppo.ppo_epochs=8",
                            "environment.num_objectives=200", "evaluation.eval_every=1",
                            "evaluation.eval_objectives=40")
    process = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, cwd=REPO)
    seen, deadline = [], time.time() + 240
    while time.time() < deadline:
        line = process.stderr.readline()
        if not line:
            break
        seen.append(line)
        if marker in line:
            process.send_signal(signal.SIGINT)
            break
    _, rest = process.communicate(timeout=240)
    stderr = "".join(seen) + rest
    assert any(marker in line for line in seen), stderr[-3000:]
    assert process.returncode == 0, stderr[-3000:]
    assert "Traceback" not in stderr and "saved checkpoint-1" in stderr
    assert ckpt.verify_checkpoint(out / "checkpoint-1") is None
    history = json.loads((out / "training_metrics.json").read_text())
    assert [record["epoch"] for record in history] == [1]  # the epoch's update was kept and logged
    assert history[0]["update/skipped"] == 0 and not (out / "final_model").exists()


@pytest.mark.parametrize("elapsed_minutes, epochs_done, fits", [
    (10.1, 3, False),  # the main command: 3 epochs of ~3.4 min leave no room for a 4th in 11 minutes
    (6.8, 2, True),
    (0.5, 1, True),
    (11.5, 4, False),
])
def test_the_time_budget_stops_before_an_epoch_that_would_overrun_it(elapsed_minutes, epochs_done, fits) -> None:
    from training.loop import next_epoch_fits

    assert next_epoch_fits(60 * elapsed_minutes, epochs_done, 60 * 11) is fits
