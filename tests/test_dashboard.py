"""The dashboard's API and live stream, against a real tiny training run and the committed ``results/fuzzing``:
what each endpoint returns, the WebSocket pushing a row appended while connected, run states, path traversal,
read-only access and the command line."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from dashboard.__main__ import main
from dashboard.app import create_app
from dashboard.records import claim_and_truth
from environment.rewards import IMMEDIATE_TERMS
from tests.conftest import REPO

FUZZING = REPO / "results" / "fuzzing"
REWARD_TERMS = set(IMMEDIATE_TERMS)


def copy_run(source: Path, target: Path) -> Path:
    """A copy of a run directory without its checkpoints (the dashboard never reads them)."""
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("checkpoint-*", "tb"))
    return target


@pytest.fixture
def tiny_root(tiny_two_epoch_run: Path, tmp_path: Path) -> Path:
    """A root ``runs/`` holding a copy of the tiny two-epoch run as ``runs/tiny`` (id ``runs/tiny``)."""
    root = tmp_path / "runs"
    root.mkdir()
    copy_run(tiny_two_epoch_run, root / "tiny")
    return root


@pytest.fixture
def client(tiny_root: Path) -> TestClient:
    return TestClient(create_app([tiny_root, REPO / "results"], poll_seconds=0.05))


def test_runs_lists_the_tiny_run_and_the_committed_results(client, tiny_root) -> None:
    runs = {run["id"]: run for run in client.get("/api/runs").json()["runs"]}
    tiny = runs["runs/tiny"]
    assert tiny["state"] == "finished" and tiny["kind"] == "training" and tiny["epochs"] == 2
    assert tiny["iterations"] == 2 and tiny["base_model"] == "tiny-gpt2"
    assert tiny["wall_source"] == "logs" and tiny["wall_seconds"] > 0
    fuzzing = runs["results/fuzzing"]
    expected: dict[str, int] = {}
    for name in ("findings.jsonl", "training_findings.jsonl"):
        for line in (FUZZING / name).read_text().splitlines():
            kind = json.loads(line)["kind"]
            expected[kind] = expected.get(kind, 0) + 1
    assert fuzzing["findings"] == expected and fuzzing["epochs"] == 10
    reports = json.loads((FUZZING / "evaluation.json").read_text())["reports"]
    assert fuzzing["final_comparison"]["models"] == list(reports)
    assert runs["results/main_command_v6/heldout"]["kind"] == "evaluation"
    assert "results/main_command_v8/tempered/seed0" in runs
    assert not any("checkpoint" in run_id for run_id in runs)


def test_metrics_and_sample_conversations_of_the_tiny_run(client, tiny_root) -> None:
    rows = client.get("/api/runs/runs/tiny/metrics").json()["rows"]
    written = json.loads((tiny_root / "tiny" / "training_metrics.json").read_text())
    assert [row["epoch"] for row in rows] == [1, 2]
    for row, original in zip(rows, written, strict=True):
        assert "sample_conversations" not in row and row["sample_count"] == len(original["sample_conversations"])
        for name in ("env/success_rate", "env/reward_mean", "objective/kl", "ppo/policy/entropy", "update/accepted",
                     "time/rollout", "time/update/total"):
            assert row[name] == original[name]
        assert any(name.startswith("env/reward/") for name in row)
    conversations = client.get("/api/runs/runs/tiny/conversations", params={"epoch": 2}).json()["conversations"]
    texts = written[1]["sample_conversations"]
    assert len(conversations) == len(texts) > 0
    for parsed, text in zip(conversations, texts, strict=True):
        assert parsed["epoch"] == 2 and text.startswith(f"objective: {parsed['objective']}\n")
        assert {turn["role"] for turn in parsed["turns"]} <= {"user", "agent"} and parsed["turns"][0]["role"] == "agent"
        body = "\n".join(f"  {turn['role']}: {turn['text']}" for turn in parsed["turns"])
        messages_only = "\n".join(line for line in text.split("\n")
                                  if not line.startswith(("  [tool] ", "  [reward] ")))
        assert body in messages_only  # every message, its own newlines included, read back whole
        assert f"reward {parsed['outcome']['reward']:.3f}" in text
        # Each user message carries its reward terms, each agent answer the tools it called, as the run recorded
        # them (the greeting calls none; the tiny model's text rarely makes the agent call any: the scripted
        # episodes of tests/test_findings_report.py check the calls themselves).
        users = [t for t in parsed["turns"] if t["role"] == "user"]
        assert users and all(isinstance(t.get("reward_terms"), dict) for t in users)
        assert all(set(t["reward_terms"]) <= REWARD_TERMS for t in users)
        calls = [call for t in parsed["turns"] for call in t.get("tool_calls", [])]
        assert "tool_calls" not in parsed["turns"][0] and all("tool_calls" not in t for t in users)
        assert calls == [line.removeprefix("  [tool] ") for line in text.split("\n") if line.startswith("  [tool] ")]
        assert all(re.match(r"^\w+ \{.*\} -> (ok \{|error: )", call) for call in calls), calls
        one = client.get(f"/api/runs/runs/tiny/conversations/{parsed['ref']}").json()
        assert [t["text"] for t in one["turns"]] == [t["text"] for t in parsed["turns"]]
        assert [t.get("tool_calls") for t in one["turns"]] == [t.get("tool_calls") for t in parsed["turns"]]
        assert "turn_rewards" not in one["not_recorded"]  # this run recorded them (and tool calls, where made)


def test_findings_are_grouped_by_kind_and_trigger_and_filtered(client) -> None:
    from training.findings import read_findings, trigger_key

    data = client.get("/api/runs/results/fuzzing/findings").json()
    records = read_findings(FUZZING / "findings.jsonl") + read_findings(FUZZING / "training_findings.jsonl")
    assert data["total"] == data["shown"] == len(records)
    assert sorted(f["trigger_key"] for f in data["findings"]) == sorted(trigger_key(r) for r in records)
    for group in data["groups"]:
        assert group["count"] == sum(r["kind"] == group["kind"] for r in records)
        assert sum(t["count"] for t in group["triggers"]) == group["count"]
    assert data["facets"]["epoch"] == ["2", "3", "4", "6"] and "scripted" in data["facets"]["model"]
    filters = {"persona": "hurried", "model": "scripted"}
    hurried = client.get("/api/runs/results/fuzzing/findings", params=filters).json()
    assert hurried["shown"] == sum(r.get("persona") == "hurried" and r.get("model") == "scripted" for r in records) > 0
    assert {(f["persona"], f["model"]) for f in hurried["findings"]} == {("hurried", "scripted")}
    epoch = client.get("/api/runs/results/fuzzing/findings", params={"epoch": "2"}).json()
    assert epoch["shown"] == sum(r.get("epoch") == 2 for r in records) > 0


def test_each_finding_opens_on_the_agent_message_that_made_the_claim(client) -> None:
    findings = client.get("/api/runs/results/fuzzing/findings").json()["findings"]
    for finding in findings:
        conversation = client.get(f"/api/runs/results/fuzzing/conversations/{finding['ref']}").json()
        assert conversation["focus"] == finding["id"]
        [turn] = [t for t in conversation["turns"] if any(f["id"] == finding["id"] for f in t.get("findings", []))]
        before = conversation["turns"][: turn["index"]]
        assert turn["role"] == "agent" and sum(t["role"] == "user" for t in before) == finding["trigger_turn"]
        assert before[-1]["text"] == finding["trigger_message"]
        named = re.search(r"(?:confirmation code|flight|booking) ([A-Z0-9]{5,6})\b", finding["reason"])
        if named:  # the code or flight the verifier names is in the message it flagged
            assert named[1] in turn["text"] and named[1] in finding["truth"]
        assert finding["claim"] and finding["truth"]


@pytest.mark.parametrize(("reason", "claim", "truth"), [
    ("no booking with confirmation code JZNE56 exists", "a booking with confirmation code JZNE56",
     "no booking row with confirmation code JZNE56"),
    ("a booking is claimed but the episode made no booking", "a booking",
     "no booking row: the episode made no booking"),
    ("flight 4M4034 does not exist", "flight 4M4034", "no flight row 4M4034"),
    ("flight UA12 on 2027-01-04 is cancelled", "flight UA12 on 2027-01-04 flies",
     "flight UA12 on 2027-01-04: status cancelled"),
    ("booking AB12CD is said to be cancelled but is confirmed", "booking AB12CD is cancelled",
     "booking AB12CD: status confirmed"),
    ("booking EBR6XP: stated $67.94, charged $81.83 for 1 passenger(s)", "$67.94",
     "booking EBR6XP: charged $81.83 for 1 passenger(s)"),
    ("booking UUNFMO: stated cabin business, booked economy", "cabin business", "booking UUNFMO: booked economy"),
    ("booking X1: stated passenger 'Ann Lee', booked 'Ann Li'", "passenger 'Ann Lee'", "booking X1: booked 'Ann Li'"),
    ("something the verifier says in a new way", None, "something the verifier says in a new way"),
])
def test_claim_and_truth_of_the_verifiers_reasons(reason, claim, truth) -> None:
    assert claim_and_truth(reason) == {"claim": claim, "truth": truth}


def test_evaluations_side_by_side(client) -> None:
    [table] = client.get("/api/runs/results/fuzzing/evaluations").json()["evaluations"]
    reports = json.loads((FUZZING / "evaluation.json").read_text())["reports"]
    assert table["source"] == "evaluation.json" and table["models"] == list(reports) and table["mode"] == "adversarial"
    rows = {row["metric"]: row["values"] for row in table["rows"]}
    assert rows["success_rate"] == [report["success_rate"] for report in reports.values()]
    assert rows["hallucinations: phantom_confirmation"] == [
        report["hallucinations_by_kind"].get("phantom_confirmation", 0) for report in reports.values()]
    scripted = table["samples"][table["models"].index("scripted")]["refs"][0]
    conversation = client.get(f"/api/runs/results/fuzzing/conversations/{scripted}").json()
    assert conversation["model"] == "scripted"
    lines = [f"{t['role']}: {t['text']}" for t in conversation["turns"]]
    assert lines == reports["scripted"]["sample_conversations"][0]


def _receive_until(ws, kind: str, done, limit: int = 200) -> dict:
    for _ in range(limit):
        message = ws.receive_json()
        if message["type"] == kind and done(message):
            return message
    raise AssertionError(f"no {kind} message in {limit}")


def test_websocket_pushes_a_row_appended_while_connected(client, tiny_root) -> None:
    metrics_path = tiny_root / "tiny" / "training_metrics.json"
    with client.websocket_connect("/ws/runs/runs/tiny") as ws:
        first = _receive_until(ws, "metrics", lambda m: True)
        assert first["initial"] and [row["epoch"] for row in first["rows"]] == [1, 2]
        _receive_until(ws, "state", lambda m: m["run"]["epochs"] == 2)
        rows = json.loads(metrics_path.read_text())
        rows.append(dict(rows[-1], epoch=3, **{"env/reward_mean": 0.123}))
        tmp = metrics_path.with_name(".training_metrics.json.tmp")  # replaced whole, as the trainer writes it
        tmp.write_text(json.dumps(rows, indent=1))
        tmp.replace(metrics_path)
        pushed = _receive_until(ws, "metrics", lambda m: any(row["epoch"] == 3 for row in m["rows"]))
        assert not pushed["initial"] and [row["epoch"] for row in pushed["rows"]] == [3]
        assert pushed["rows"][0]["env/reward_mean"] == 0.123
        samples = _receive_until(ws, "conversations", lambda m: True)
        assert {s["epoch"] for s in samples["conversations"]} == {3}
        assert _receive_until(ws, "state", lambda m: True)["run"]["epochs"] == 3


def test_run_state_follows_the_output_dir_lock(client, tiny_root) -> None:
    from training.output_dir import lock_output_dir

    def state() -> str:
        return client.get("/api/runs/runs/tiny").json()["state"]

    lock, _ = lock_output_dir(tiny_root / "tiny")  # a live process (this one) holds the run
    try:
        assert state() == "running"
    finally:
        lock.release()
    assert state() == "finished"
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    import socket

    (tiny_root / "tiny" / ".run.lock").write_text(json.dumps({"pid": int(ended.stdout), "host": socket.gethostname()}))
    assert state() == "failed"  # killed without releasing its lock


def test_run_ids_cannot_escape_the_given_paths(tiny_root, tmp_path) -> None:
    outside = tmp_path / "outside"
    copy_run(FUZZING, outside)
    (outside / "training_metrics.json").write_text(json.dumps([{"epoch": 1, "secret": "OUTSIDE"}]))
    evil = tiny_root / "evil"
    evil.mkdir()
    (evil / "training_metrics.json").symlink_to(outside / "training_metrics.json")
    (evil / "findings.jsonl").symlink_to(outside / "findings.jsonl")
    (tiny_root / "linked").symlink_to(outside, target_is_directory=True)
    client = TestClient(create_app([tiny_root]))
    runs = {run["id"] for run in client.get("/api/runs").json()["runs"]}
    assert runs == {"runs/tiny", "runs/evil"}  # the linked folder is not entered
    assert client.get("/api/runs/runs/evil/metrics").json()["rows"] == []
    assert client.get("/api/runs/runs/evil/findings").json()["total"] == 0
    # Encoded: the server receives ".." and "/" in the id; plain: normalised by the client, as a browser does.
    escapes = ["..", "runs/../outside", "runs/tiny/../../outside", "%2e%2e/outside",
               "runs/%2e%2e/%2e%2e/outside", "runs%2f..%2f..%2foutside", str(outside), "%2F" + str(outside)[1:],
               "runs/linked", "runs/linked/", "/etc", "runs/tiny/logs"]
    for run_id in escapes:
        for suffix in ("", "/metrics", "/findings", "/evaluations", "/conversations"):
            response = client.get(f"/api/runs/{run_id}{suffix}")
            assert response.status_code == 404, (run_id, suffix, response.text[:200])
            assert "OUTSIDE" not in response.text
    for ref in ("finding-..%2Foutside%2Ffindings-0", "finding-findings-0", "eval-..-0-0", "sample-9-0"):
        assert client.get(f"/api/runs/runs/evil/conversations/{ref}").status_code == 404
    with client.websocket_connect("/ws/runs/runs/%2e%2e/outside") as ws:
        assert ws.receive_json()["type"] == "error"


def _snapshot(directory: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(directory)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(directory.rglob("*"))} | {".": (0, directory.stat().st_mtime_ns)}


def test_the_dashboard_never_writes_into_a_run(tiny_two_epoch_run, tmp_path) -> None:
    fuzzing = copy_run(FUZZING, tmp_path / "results" / "fuzzing")
    before = (_snapshot(tiny_two_epoch_run), _snapshot(fuzzing))
    client = TestClient(create_app([tiny_two_epoch_run, fuzzing.parent], poll_seconds=0.05))
    ids = [run["id"] for run in client.get("/api/runs").json()["runs"]]
    assert ids == ["out", "results/fuzzing"]
    for run_id in ids:
        for suffix in ("", "/metrics", "/conversations", "/findings", "/evaluations"):
            assert client.get(f"/api/runs/{run_id}{suffix}").status_code == 200
        with client.websocket_connect(f"/ws/runs/{run_id}") as ws:
            _receive_until(ws, "state", lambda m: True)
    for finding in client.get("/api/runs/results/fuzzing/findings").json()["findings"][:3]:
        assert client.get(f"/api/runs/results/fuzzing/conversations/{finding['ref']}").status_code == 200
    assert (_snapshot(tiny_two_epoch_run), _snapshot(fuzzing)) == before


def test_file_names_and_tables_match_what_training_writes() -> None:
    from dashboard import runs, views
    from training.evaluation import FINAL_TABLE
    from training.findings import FINDINGS_JSONL, trigger_key
    from training.metrics import METRICS_FILE
    from training.output_dir import LOCK_NAME, RUN_OUTPUT_FILES

    assert (runs.METRICS_FILE, runs.LOCK_NAME, runs.final_table_rows()) == (METRICS_FILE, LOCK_NAME, FINAL_TABLE)
    assert FINDINGS_JSONL.endswith(runs.FINDINGS_SUFFIX) and runs.CONFIG_FILE in RUN_OUTPUT_FILES
    assert "final_evaluation.json" in RUN_OUTPUT_FILES
    record = {"trigger_message": "  I NEED it -- now!!  Book it, please. "}
    assert views.trigger_key(record) == trigger_key(record)


def test_command_line_refuses_a_missing_runs_path(tmp_path, capsys) -> None:
    assert main(["--runs", str(REPO / "results"), str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: --runs {tmp_path / 'missing'}: no such directory"]
    result = subprocess.run([sys.executable, "-m", "dashboard", "--runs", str(tmp_path / "nope")], cwd=REPO,
                            capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 2 and result.stderr.strip() == f"error: --runs {tmp_path / 'nope'}: no such directory"
