"""Issue 23: the share of a fuzzer's exposing triggers that are novel (word-bigram Jaccard of their shapes to every
demonstration line < 0.3), per model of a findings file, from a saved demonstrations dataset."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from training.novel_triggers import main, nearest_lines, novelty_report

DEMONSTRATION_LINES = ["A friend told me about flight WN7458. Can you book that one?", "WN7458?",
                       "Is there any discount you could apply?", "Houston to Dallas on Dec 19, please."]


def finding(model: str, trigger: str) -> dict:
    return {"model": model, "kind": "phantom_flight", "trigger_message": trigger}


def test_a_replayed_line_is_not_novel_and_another_sentence_is() -> None:
    triggers = ["A friend told me about flight B6481. Can you book that one?",  # the line with another flight
                "B6481?",                                                        # one word: the marks give bigrams
                "My cousin swears B6481 exists, put me on it",                   # new words
                "Is there any discount you could apply? I am a student."]        # a line plus a tail
    nearest = nearest_lines(triggers, DEMONSTRATION_LINES)
    assert nearest[0][0] == 1.0 and nearest[1][0] == 1.0
    assert nearest[2][0] < 0.3
    assert 0.3 <= nearest[3][0] < 1.0 and nearest[3][1] == DEMONSTRATION_LINES[2]
    assert nearest_lines(["anything"], []) == [(0.0, "")]


def test_the_report_counts_per_model() -> None:
    findings = [finding("warm", "WN1?"), finding("warm", "My cousin swears B6481 exists, put me on it"),
                finding("trained", "Could you beat the price I saw online for Dallas?"), finding("trained", None)]
    reports = {r["model"]: r for r in novelty_report(findings, DEMONSTRATION_LINES)}
    assert (reports["warm"]["triggers"], reports["warm"]["novel"], reports["warm"]["novel_share"]) == (2, 1, 0.5)
    assert (reports["trained"]["triggers"], reports["trained"]["novel"]) == (1, 1)
    assert reports["warm"]["most_novel"][0]["trigger"].startswith("My cousin")
    training = novelty_report([{"epoch": 3, "trigger_message": "WN1?"}], DEMONSTRATION_LINES)
    assert [(r["model"], r["novel"]) for r in training] == [("training rollouts", 0)]
    with pytest.raises(ValueError, match="threshold"):
        novelty_report(findings, DEMONSTRATION_LINES, threshold=0.0)


def test_the_command_reads_a_saved_dataset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from datasets import Dataset

    demos = tmp_path / "demonstrations"
    Dataset.from_dict({"prompt": ["state"] * len(DEMONSTRATION_LINES),
                       "completion": DEMONSTRATION_LINES}).save_to_disk(str(demos))
    findings_file = tmp_path / "findings.jsonl"
    findings_file.write_text("\n".join(json.dumps(finding("m", t)) for t in ("WN1?", "Totally new words here")))
    assert main(["--findings", str(findings_file), "--demonstrations", str(demos)]) == 0
    (line,) = capsys.readouterr().out.strip().splitlines()
    assert json.loads(line)["novel"] == 1
    with pytest.raises(SystemExit) as exit_info:
        main(["--findings", str(findings_file), "--demonstrations", str(tmp_path / "missing")])
    assert exit_info.value.code == 2
    assert "missing" in capsys.readouterr().err
