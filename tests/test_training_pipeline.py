"""End-to-end training on a tiny model: outputs, TensorBoard, resume equality, SIGKILL/SIGINT, bad configs,
the stateless AutoUserAgent, and data-parallel training under ``accelerate launch``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from environment.rewards import IMMEDIATE_TERMS
from training.config import load_config
from training.ppo import PPO_METRICS

REPO = Path(__file__).resolve().parents[1]
TRAIN = [sys.executable, str(REPO / "training" / "train_ppo.py"), "--config", str(REPO / "configs" / "tiny_test.yaml")]
EXPECTED_ENV_METRICS = ["env/reward_mean", "env/reward_std", "env/verifier_score",
                        "env/hallucination_rate", "env/episode_length", "env/success_rate", "env/errors",
                        *[f"env/reward/{term}" for term in IMMEDIATE_TERMS], "buffer/normal_size",
                        "buffer/adversarial_size", "state_completeness", "time/rollout",
                        "time/update/total", "time/tokens_per_second"]


@pytest.fixture(scope="module")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("model-cache")


def overrides(out: Path, template_db: Path, model_cache: Path, *extra: str) -> list[str]:
    args = [f"logging.output_dir={out}", f"logging.tensorboard_dir={out / 'tb'}",
            f"model.model_cache_dir={model_cache}", f"environment.db_path={template_db}",
            f"environment.workdir={out / 'work'}", "hardware.num_threads=1", *extra]
    return [item for value in args for item in ("--set", value)]


def train(out: Path, template_db: Path, model_cache: Path, *extra: str, resume: str | None = None,
          timeout: float = 300) -> subprocess.CompletedProcess:
    command = TRAIN + overrides(out, template_db, model_cache, *extra) + (["--resume", resume] if resume else [])
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=REPO)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, template_db, model_cache) -> Path:
    out = tmp_path_factory.mktemp("run") / "out"
    # evaluation.num_envs other than ppo.num_envs (2): evaluations play on environments of their own
    result = train(out, template_db, model_cache, "evaluation.final_comparison=2", "evaluation.num_envs=1")
    assert result.returncode == 0, result.stderr[-3000:]
    (out.parent / "stdout.txt").write_text(result.stdout)
    return out


def test_two_epochs_write_every_output(trained: Path) -> None:
    for epoch in (1, 2):
        checkpoint = trained / f"checkpoint-{epoch}"
        for name in ("adapter_model.safetensors", "value_head.safetensors", "tokenizer.json", "buffer.json",
                     "trainer_state.json", "optimizer.pt", "COMPLETE"):
            assert (checkpoint / name).exists(), (epoch, name)
        state = json.loads((checkpoint / "trainer_state.json").read_text())
        assert state["epoch"] == epoch and state["kl_coef"] > 0 and "rng" in state
        json.loads((checkpoint / "buffer.json").read_text())
    assert (trained / "final_model" / "value_head.safetensors").exists()
    config = yaml.safe_load((trained / "training_config.yaml").read_text())
    assert config["model"]["base_model"] == "tiny-gpt2" and config["ppo"]["iterations"] == 2
    history = json.loads((trained / "training_metrics.json").read_text())
    assert [record["epoch"] for record in history] == [1, 2]
    for record in history:
        missing = [name for name in (*PPO_METRICS, *EXPECTED_ENV_METRICS) if name not in record]
        assert not missing, missing
        assert record["architecture"] == "stateless" and record["state_completeness"] == 1.0
    assert "eval/success_rate" in history[1]
    (log,) = (trained / "logs").glob("ppo_training_*.log")
    assert "epoch 2 |" in log.read_text()


def test_run_ends_with_a_base_vs_trained_table(trained: Path) -> None:
    """evaluation.final_comparison: both models on the same held-out objectives, printed, written, in TensorBoard."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    reports = json.loads((trained / "final_evaluation.json").read_text())["reports"]
    assert list(reports) == ["base", "trained"]
    for report in reports.values():
        assert report["episodes"] == 2 and 0.0 <= report["success_rate"] <= 1.0
    firsts = [[turns[1] for turns in report["sample_conversations"]] for report in reports.values()]
    assert firsts[0] != firsts[1], "base and trained sampled the same first user turns"
    stdout = (trained.parent / "stdout.txt").read_text()
    assert "Base vs trained, 2 held-out objectives" in stdout
    table = stdout.split("Base vs trained", 1)[1]
    for label in ("success", "reward", "role confusion", "hallucinations / episode"):
        assert label in table, label
    assert "| success_rate |" in (trained / "final_evaluation.md").read_text()
    accumulator = EventAccumulator(str(trained / "tb"))
    accumulator.Reload()
    assert "final_comparison/text_summary" in accumulator.Tags()["tensors"]


def test_evaluate_py_replays_the_end_of_run_comparison(trained: Path, template_db: Path, model_cache: Path) -> None:
    """One evaluation path: `evaluate.py --compare base final_model` on the comparison's held-out objectives plays
    exactly the conversations the training run's end-of-run comparison played (same sampler, same seeds, the
    same number of evaluation environments: ``evaluation.num_envs``)."""
    from training.config import load_config
    from training.evaluate import evaluate_model, evaluation_objectives

    config = load_config(trained / "training_config.yaml")
    final = json.loads((trained / "final_evaluation.json").read_text())["reports"]
    objectives = evaluation_objectives(config, episodes=2, seeds=1, objectives_file=None)
    for name, model in (("base", "base"), ("trained", str(trained / "final_model"))):
        report, records = evaluate_model(model, config, episodes=2, seeds=1, objectives=objectives)
        assert report["sample_conversations"] == final[name]["sample_conversations"], name
        for key in ("success_rate", "reward_mean", "distinct_1", "distinct_2", "mean_turns"):
            assert report[key] == final[name][key], (name, key)


def test_tensorboard_events_read_back(trained: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(trained / "tb"))
    accumulator.Reload()
    tags = accumulator.Tags()["scalars"]
    for name in ("env/reward_mean", "ppo/loss/total", "objective/kl_coef", "buffer/normal_size"):
        assert name in tags, name
    assert [event.step for event in accumulator.Scalars("env/reward_mean")] == [1, 2]
    # logging.sample_conversations (1 in the tiny config): one conversation per epoch in the text tab and the log
    assert "sample_conversations/1/text_summary" in accumulator.Tags()["tensors"]
    history = json.loads((trained / "training_metrics.json").read_text())
    assert all(len(record["sample_conversations"]) == 1 for record in history)
    assert all("user: " in record["sample_conversations"][0] for record in history)


def test_one_seed_derives_every_other_seed() -> None:
    config = load_config(REPO / "configs" / "tiny_test.yaml", ["seed=7"])
    assert (config.seed, config.environment.seed, config.ppo.seed) == (7, 7, 7)
    explicit = load_config(REPO / "configs" / "tiny_test.yaml", ["seed=7", "ppo.seed=3"])
    assert (explicit.environment.seed, explicit.ppo.seed) == (7, 3)
    # the objectives and their held-out split are data: the same for every run seed
    assert config.environment.objectives_seed == explicit.environment.objectives_seed == 0


def test_one_seed_gives_the_same_run_and_another_a_different_one(trained, tmp_path, template_db,
                                                                 model_cache) -> None:
    def first_epoch(seed: int) -> dict:
        out = tmp_path / f"seed-{seed}"
        result = train(out, template_db, model_cache, "ppo.iterations=1", f"seed={seed}")
        assert result.returncode == 0, result.stderr[-3000:]
        return json.loads((out / "training_metrics.json").read_text())[0]

    reference = json.loads((trained / "training_metrics.json").read_text())[0]  # seed 0
    same, other = first_epoch(0), first_epoch(1)
    assert same["sample_conversations"] == reference["sample_conversations"]
    assert same["ppo/loss/total"] == pytest.approx(reference["ppo/loss/total"], rel=1e-5)
    assert other["sample_conversations"] != reference["sample_conversations"]
    assert other["ppo/loss/total"] != pytest.approx(reference["ppo/loss/total"], rel=1e-5)


def test_resume_matches_uninterrupted_run(trained, tmp_path, template_db, model_cache) -> None:
    out = tmp_path / "resumed"
    same = "evaluation.num_envs=1"  # as the `trained` run: the evaluation's batches decide what it samples
    first = train(out, template_db, model_cache, "ppo.iterations=1", same)
    assert first.returncode == 0, first.stderr[-3000:]
    second = train(out, template_db, model_cache, same, resume="latest")
    assert second.returncode == 0, second.stderr[-3000:]
    assert "continuing at epoch 2" in second.stderr
    uninterrupted = json.loads((trained / "training_metrics.json").read_text())[-1]
    resumed = json.loads((out / "training_metrics.json").read_text())[-1]
    compared = [k for k, v in uninterrupted.items() if isinstance(v, float) and not k.startswith("time/")]
    assert len(compared) > 30
    for key in compared:
        assert resumed[key] == pytest.approx(uninterrupted[key], rel=1e-5, abs=1e-6, nan_ok=True), key


def test_sigkill_then_resume(tmp_path, template_db, model_cache) -> None:
    out = tmp_path / "killed"
    command = TRAIN + overrides(out, template_db, model_cache, "ppo.iterations=4", "ppo.rollout_episodes=4")
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO)
    deadline = time.time() + 240
    while not (out / "checkpoint-1" / "COMPLETE").exists() and time.time() < deadline:
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    (out / "checkpoint-9").mkdir()  # a half-written checkpoint (no COMPLETE marker) must be ignored
    resumed = train(out, template_db, model_cache, "ppo.iterations=4", "ppo.rollout_episodes=4", resume="latest")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "checkpoint-9" not in resumed.stderr
    history = json.loads((out / "training_metrics.json").read_text())
    assert [record["epoch"] for record in history] == [1, 2, 3, 4]
    assert (out / "final_model" / "adapter_model.safetensors").exists()


def test_sigint_saves_a_checkpoint_and_exits_cleanly(tmp_path, template_db, model_cache) -> None:
    out = tmp_path / "interrupted"
    command = TRAIN + overrides(out, template_db, model_cache, "ppo.iterations=50")
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    deadline = time.time() + 240
    while not (out / "checkpoint-1").exists() and time.time() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr[-3000:]
    assert "Traceback" not in stderr and "interrupted" in stderr
    complete = sorted(p.name for p in out.glob("checkpoint-*") if (p / "COMPLETE").exists())
    assert complete and not (out / "final_model").exists()


@pytest.mark.parametrize("setting, key", [
    ("ppo.bogus=1", "ppo.bogus"),
    ("ppo.learning_rate=fast", "ppo.learning_rate"),
    ("ppo.cliprange=-0.2", "ppo.cliprange"),
    ("buffer.adversarial_ratio=1.5", "buffer.adversarial_ratio"),
    ("environment.db_path=/no/such.db", "environment.db_path"),
    ("model.base_model=./no-such-model", "model.base_model"),
    ("environment.agent.transport=carrier-pigeon", "environment.agent.transport"),
    ("environment.reward.verifier_weight=2", "environment.reward.verifier_weight"),
    ("reward.verifier_weight=0.5", "environment.reward"),
    ("environment.agent.rule.p_stale_details=1.5", "environment.agent.rule.p_stale_details"),
    ("model.use_lora=maybe", "model.use_lora"),
])
def test_bad_config_exits_2_with_one_line(tmp_path, template_db, model_cache, setting, key, capsys) -> None:
    from training.train_ppo import main

    argv = ["--config", str(REPO / "configs" / "tiny_test.yaml")] + overrides(tmp_path / "bad", template_db,
                                                                              model_cache, setting)
    assert main(argv) == 2
    stderr = capsys.readouterr().err
    lines = [line for line in stderr.splitlines() if line.startswith("config error")]
    assert len(lines) == 1 and key in lines[0], stderr[-2000:]
    assert "Traceback" not in stderr
    assert not (tmp_path / "bad").exists()  # failed before anything was written or loaded


def test_bad_config_exit_code_from_the_command_line(tmp_path, template_db, model_cache) -> None:
    result = train(tmp_path / "bad", template_db, model_cache, "ppo.bogus=1", timeout=120)
    assert result.returncode == 2 and "config error: ppo.bogus: unknown key" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_config_file_exits_2(tmp_path) -> None:
    result = subprocess.run([sys.executable, str(REPO / "training" / "train_ppo.py"), "--config",
                             str(tmp_path / "nope.yaml")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "--config: no such file" in result.stderr


def test_init_from_starts_a_fresh_run_from_a_trained_policy(trained, tmp_path, template_db, model_cache) -> None:
    """model.init_from (a fuzzing run starts from the cooperative policy): its weights, not a fresh adapter."""
    from safetensors.torch import load_file

    # A learning rate of 1e-12 leaves checkpoint-1 where the run started.
    started = train(tmp_path / "init", template_db, model_cache, f"model.init_from={trained / 'final_model'}",
                    "ppo.iterations=1", "ppo.learning_rate=1e-12")
    assert started.returncode == 0, started.stderr[-3000:]
    fresh = train(tmp_path / "fresh", template_db, model_cache, "ppo.iterations=1", "ppo.learning_rate=1e-12")
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    log = next((tmp_path / "init" / "logs").glob("*.log")).read_text()
    assert "starting from the trained policy" in log

    def distance(a: Path, b: Path) -> float:
        left, right = load_file(str(a / "adapter_model.safetensors")), load_file(str(b / "adapter_model.safetensors"))
        return sum(float((left[k] - right[k]).pow(2).sum()) for k in left)

    source = trained / "final_model"
    assert distance(tmp_path / "init" / "checkpoint-1", source) < 1e-6 < distance(tmp_path / "fresh" / "checkpoint-1",
                                                                               source)
    state = json.loads((tmp_path / "init" / "checkpoint-1" / "trainer_state.json").read_text())
    assert state["epoch"] == 1  # a fresh run: epochs count from 1


def test_auto_user_agent_loads_final_model_in_a_fresh_process(trained: Path) -> None:
    script = f"""
import asyncio, json
from agents.auto_user import AutoUserAgent, AutoUserConfig
agent = AutoUserAgent(AutoUserConfig(model_name={str(trained / 'final_model')!r}, max_new_tokens=8, seed=3))
agent.initialize_model()
state = "Objective: fly from Boston to Atlanta.\\nAgent: Hello! Where to?\\nUser:"
first, second = asyncio.run(agent.get_action(state, seed=3)), asyncio.run(agent.get_action(state, seed=3))
stateful = [name for name in vars(agent) if any(w in name for w in ("history", "objective", "turn", "conversation"))]
print(json.dumps({{"first": first, "second": second, "stateful": stateful, "has_reset": hasattr(agent, "reset"),
                  "batch": agent.get_actions([state, "User:"])}}))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=180, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    output = json.loads(result.stdout.strip().splitlines()[-1])
    assert output["first"] == output["second"]
    assert output["stateful"] == [] and output["has_reset"] is False
    assert len(output["batch"]) == 2


def test_data_parallel_training_under_accelerate_launch(tmp_path, template_db, model_cache) -> None:
    """Two CPU processes (accelerate launch starts them through torchrun, gloo backend)."""
    out = tmp_path / "distributed"
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port",
               "29533", str(REPO / "training" / "train_ppo.py"), "--config", str(REPO / "configs" / "tiny_test.yaml"),
               *overrides(out, template_db, model_cache, "evaluation.eval_every=0")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "on 2 process(es)" in result.stderr
    assert result.stderr.count("epoch 2 |") == 1  # only the main process logs
    history = json.loads((out / "training_metrics.json").read_text())
    assert [record["epoch"] for record in history] == [1, 2]
    assert all(record["update/accepted"] in (0.0, 1.0) for record in history)
    assert (out / "final_model" / "adapter_model.safetensors").exists()
