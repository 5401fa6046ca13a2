"""The warm start as the first stage of ``train_ppo.py`` (``warm_start.enabled``), on the tiny offline config:
demonstrations from training objectives only, the supervised step, PPO from its result with the warm start as the KL
reference (or the base model), the three-column final comparison, and a resume that reuses what was made."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from datasets import load_from_disk

from tests.conftest import REPO, train_command
from training.config import ConfigError, load_config

WARM = ["warm_start.enabled=true", "warm_start.demonstration_episodes=6", "warm_start.max_steps=4",
        "warm_start.learning_rate=1e-2", "warm_start.eval_fraction=0.3", "warm_start.logging_steps=2",
        "evaluation.eval_every=0", "evaluation.final_comparison=2", "ppo.iterations=1"]


def _train(out: Path, template_db: Path, cache: Path, *settings: str,
           resume: bool = False) -> subprocess.CompletedProcess:
    command = train_command(out, template_db, cache, *WARM, *settings)
    if resume:
        command += ["--resume", "latest"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def warm_run(tmp_path_factory: pytest.TempPathFactory, template_db: Path, tiny_model_cache: Path) -> Path:
    out = tmp_path_factory.mktemp("warm-run") / "out"
    result = _train(out, template_db, tiny_model_cache)
    (out.parent / "stdout.txt").write_text(result.stdout)
    (out.parent / "stderr.txt").write_text(result.stderr)
    return out


def test_stage_outputs_stay_in_the_run_directory(warm_run: Path) -> None:
    root = warm_run / "warm_start"
    for name in ("demonstrations", "policy", "merged"):
        assert (root / name / "COMPLETE").is_file(), name
    metrics = json.loads((root / "policy" / "warm_start_metrics.json").read_text())
    assert metrics["steps"] == 4 and metrics["demonstrations"]["episodes"] == 6
    # the supervised step lowers the completion loss on demonstrations it did not train on
    assert metrics["eval_completion_loss_after"] < metrics["eval_completion_loss_before"], metrics
    merged = json.loads((root / "merged" / "config.json").read_text())
    assert merged["model_type"] == "gpt2" and not (root / "merged" / "policy_config.json").exists()


def test_demonstrations_never_hold_a_held_out_objective(warm_run: Path) -> None:
    from environment.objectives import load_objectives

    config = load_config(warm_run / "training_config.yaml")
    _, held_out = load_objectives(config.environment, config.evaluation.eval_objectives_file)
    rows = load_from_disk(str(warm_run / "warm_start" / "demonstrations"))
    assert len(rows) > 0 and set(rows["verifier_score"]) <= {1.0, config.environment.verifier.
                                                              infeasible_no_booking_score}
    held_out_ids = {objective.objective_id for objective in held_out}
    held_out_texts = {objective.text for objective in held_out}
    assert not held_out_ids & set(rows["objective_id"])
    assert not any(text in prompt for prompt in rows["prompt"] for text in held_out_texts)


def test_ppo_starts_at_its_reference_the_warm_start(warm_run: Path) -> None:
    """kl_reference warm_start: PPO's policy is the merged warm weights with a fresh adapter, so its first rollouts
    have KL 0 to the reference, and its checkpoints record the merged weights as their base model."""
    history = json.loads((warm_run / "training_metrics.json").read_text())
    assert abs(history[0]["objective/kl"]) < 1e-3, history[0]["objective/kl"]
    recorded = json.loads((warm_run / "final_model" / "policy_config.json").read_text())["model_config"]
    assert Path(recorded["base_model"]) == warm_run / "warm_start" / "merged"
    stderr = (warm_run.parent / "stderr.txt").read_text()
    assert "PPO trains a fresh adapter on the warm-started weights" in stderr


def test_final_comparison_has_a_column_per_stage(warm_run: Path) -> None:
    reports = json.loads((warm_run / "final_evaluation.json").read_text())["reports"]
    assert list(reports) == ["base", "warm start", "trained"]
    for report in reports.values():
        assert report["episodes"] == 2
        assert report["feasible_episodes"] + sum(
            row["episodes"] for kind, row in report["by_objective_kind"].items() if kind == "infeasible") == 2
    stdout = (warm_run.parent / "stdout.txt").read_text()
    assert "Base vs warm start vs trained, 2 held-out objectives" in stdout
    assert "success (feasible)" in stdout and "infeasible ended politely" in stdout


def test_a_fuzzing_run_writes_the_findings_of_its_held_out_comparison(warm_run: Path, tmp_path: Path,
                                                                     template_db: Path, tiny_model_cache: Path) -> None:
    """In adversarial mode the end-of-run comparison writes its exposures, labelled by column, to final_findings/
    (findings.jsonl and findings.md, as evaluate.py writes them); a cooperative run writes none."""
    from training.findings import FINAL_FINDINGS_DIR, read_findings

    assert not (warm_run / FINAL_FINDINGS_DIR).exists()
    out = tmp_path / "out"
    _train(out, template_db, tiny_model_cache, "mode=adversarial", "fuzzing.personas=[hurried,flight_number]",
           "warm_start.eval_fraction=0")
    directory = out / FINAL_FINDINGS_DIR
    assert "held-out comparison" in (directory / "findings.md").read_text()
    findings = read_findings(directory / "findings.jsonl")
    assert {f["model"] for f in findings} <= {"base", "warm start", "trained"}
    reports = json.loads((out / "final_evaluation.json").read_text())["reports"]
    assert len(findings) == sum(round(r["hallucinations_per_episode"] * r["episodes"]) for r in reports.values())


def test_resume_reuses_the_warm_start(tmp_path: Path, template_db: Path, tiny_model_cache: Path) -> None:
    out = tmp_path / "out"
    _train(out, template_db, tiny_model_cache, "evaluation.final_comparison=0", "warm_start.eval_fraction=0")
    policy_stamp = (out / "warm_start" / "policy" / "adapter_model.safetensors").stat().st_mtime_ns
    result = _train(out, template_db, tiny_model_cache, "evaluation.final_comparison=0",
                    "warm_start.eval_fraction=0", "ppo.iterations=2", resume=True)
    assert "warm start: reusing" in result.stderr
    assert "supervised step done" not in result.stderr
    assert (out / "warm_start" / "policy" / "adapter_model.safetensors").stat().st_mtime_ns == policy_stamp
    assert [r["epoch"] for r in json.loads((out / "training_metrics.json").read_text())] == [1, 2]


def test_kl_reference_base_continues_the_warm_adapter(tmp_path: Path, template_db: Path,
                                                      tiny_model_cache: Path) -> None:
    out = tmp_path / "out"
    result = _train(out, template_db, tiny_model_cache, "warm_start.kl_reference=base",
                    "evaluation.final_comparison=0")
    assert not (out / "warm_start" / "merged").exists()
    assert f"starting from the trained policy in {out / 'warm_start' / 'policy'}" in result.stderr
    history = json.loads((out / "training_metrics.json").read_text())
    assert history[0]["objective/kl"] > 1e-3, history[0]["objective/kl"]  # the warm adapter differs from the base


@pytest.mark.parametrize(("setting", "message"), [
    ("warm_start.kl_reference=sft", "warm_start.kl_reference: expected one of ['warm_start', 'base'], got 'sft'"),
    ("warm_start.demonstration_episodes=0", "warm_start.demonstration_episodes must be > 0, got 0"),
    ("warm_start.dataset_path=/nowhere", "warm_start.dataset_path: /nowhere is not a saved datasets.Dataset"),
    ("mode=adversarial", "warm_start: enabled in adversarial mode needs fuzzing.personas"),
    ("warm_start.expert_iteration_rounds=-1", "warm_start.expert_iteration_rounds must be >= 0, got -1"),
    ("warm_start.expert_iteration_episodes=0", "warm_start.expert_iteration_episodes must be > 0, got 0"),
])
def test_bad_warm_start_settings_are_one_line(setting: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(REPO / "configs" / "tiny_test.yaml", ["warm_start.enabled=true", setting])
    assert str(info.value).startswith(message) and "\n" not in str(info.value)
