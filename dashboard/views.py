"""The JSON each page shows, built from one run directory's files (``dashboard.runs``, ``dashboard.records``).

Conversations are addressed by a ``ref`` that says where the run recorded them:

- ``sample-{epoch}-{index}``: a sample conversation of an epoch in ``training_metrics.json``;
- ``finding-{file stem}-{line}``: the conversation of a finding, line ``line`` (0-based) of ``{stem}.jsonl``;
- ``eval-{file stem}-{model index}-{index}``: a sample conversation of a model in an evaluation report.

A conversation's hallucinations are placed on the agent message that made the claim wherever a findings file
records its turn (``trigger_turn``); a sample or evaluation conversation is matched to the findings of the same
conversation text. Sample conversations and findings record each agent answer's tool calls and each user turn's
reward terms (runs since session 17); evaluation reports and older runs do not, and the viewer says so
(``not_recorded``) rather than showing nothing.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

from agents.nlu import words
from dashboard.records import (
    claim_and_truth,
    claim_turn_index,
    message,
    parse_rendered_conversation,
    with_turn_details,
)
from dashboard.runs import EVALUATION_FILES, Run, findings_files, metrics_rows, read_findings

NOT_RECORDED = {
    "tool_calls": "this conversation's record has no tool calls (evaluation reports and runs before session 17 "
                  "keep only the messages; the verifier's finding states what the database holds)",
    "turn_rewards": "this conversation's record has no per-turn reward terms (the run's curves have their "
                    "per-epoch means)",
}
DETAIL_KEYS = {"tool_calls": "tool_calls", "turn_rewards": "reward_terms"}  # NOT_RECORDED's key -> a turn's key
FILTERS = ("kind", "persona", "model", "epoch", "source")
_REF = re.compile(r"^(?:sample-(?P<epoch>\d+)-(?P<sample>\d+)|finding-(?P<stem>[\w.]+)-(?P<line>\d+)"
                  r"|eval-(?P<evaluation>[\w.]+)-(?P<model>\d+)-(?P<index>\d+))$")


def trigger_key(finding: dict[str, Any]) -> str:
    """``training.findings.trigger_key``: the triggering message, normalised, for grouping (a test checks they
    agree)."""
    return " ".join(words(finding.get("trigger_message") or "")).lower()


def metrics(run: Run) -> list[dict[str, Any]]:
    """The per-epoch metric records, each sample conversation replaced by its count (they have their own view)."""
    return [strip_samples(row) for row in metrics_rows(run)]


def strip_samples(row: dict[str, Any]) -> dict[str, Any]:
    stripped = {k: v for k, v in row.items() if k != "sample_conversations"}
    stripped["sample_count"] = len(row.get("sample_conversations") or [])
    return stripped


def samples_of(row: dict[str, Any]) -> list[dict[str, Any]]:
    """One epoch's sample conversations, parsed, with their refs."""
    epoch = row["epoch"]
    return [{"ref": f"sample-{epoch}-{index}", "epoch": epoch, "index": index, **parse_rendered_conversation(text)}
            for index, text in enumerate(row.get("sample_conversations") or []) if isinstance(text, str)]


def conversations(run: Run, epoch: int | None = None) -> list[dict[str, Any]]:
    return [sample for row in metrics_rows(run) if epoch is None or row["epoch"] == epoch
            for sample in samples_of(row)]


def _finding_entry(source: str, line: int, finding: dict[str, Any]) -> dict[str, Any]:
    stem = source.removesuffix(".jsonl")
    return {"id": f"{stem}-{line}", "ref": f"finding-{stem}-{line}", "source": source,
            **{key: finding.get(key) for key in ("kind", "counts_as", "reason", "trigger_turn", "trigger_message",
                                                 "persona", "model", "epoch", "objective", "objective_id")},
            **claim_and_truth(str(finding.get("reason") or "")), "trigger_key": trigger_key(finding)}


def _all_findings(run: Run) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(entry, record) of every finding in every findings file of the run."""
    return [(_finding_entry(source, line, record), record) for source in findings_files(run)
            for line, record in enumerate(read_findings(run, source))]


def findings(run: Run, filters: dict[str, str | None]) -> dict[str, Any]:
    """The run's findings passing ``filters`` (exact values of ``FILTERS``), grouped by kind and then by triggering
    message, with every value each filter can take."""
    everything = [entry for entry, _ in _all_findings(run)]
    facets = {name: sorted({str(e[name]) for e in everything if e[name] is not None}, key=_natural)
              for name in FILTERS}
    chosen = [e for e in everything if all(value in (None, "") or str(e[name]) == value
                                           for name, value in filters.items())]
    by_kind: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for entry in chosen:
        by_kind[str(entry["kind"])].append(entry)
    groups = []
    for kind, items in sorted(by_kind.items(), key=lambda item: -len(item[1])):
        triggers: dict[str, list[str]] = defaultdict(list)
        for entry in items:
            triggers[entry["trigger_key"]].append(entry["id"])
        groups.append({"kind": kind, "counts_as": items[0]["counts_as"], "count": len(items),
                       "triggers": [{"trigger": key, "count": len(ids), "ids": ids}
                                    for key, ids in sorted(triggers.items(), key=lambda item: -len(item[1]))]})
    return {"total": len(everything), "shown": len(chosen), "facets": facets, "groups": groups, "findings": chosen}


def _natural(value: str) -> tuple:
    return (0, int(value), "") if value.isdigit() else (1, 0, value)


def _place(turns: list[dict[str, Any]], found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Put each finding on the agent turn that made its claim; return those with no place (no turn recorded)."""
    unplaced = []
    for entry in found:
        index = claim_turn_index(turns, entry.get("trigger_turn"))
        if index is None:
            unplaced.append(entry)
        else:
            turns[index].setdefault("findings", []).append(entry)
    return unplaced


def _matching_findings(run: Run, lines: list[str], **labels: Any) -> list[dict[str, Any]]:
    """The findings recorded for the conversation ``lines`` (same text, and the labels the finding carries)."""
    return [entry for entry, record in _all_findings(run) if record.get("conversation") == lines
            and all(record.get(k) == v for k, v in labels.items() if k in record)]


def conversation(run: Run, ref: str) -> dict[str, Any] | None:
    """The conversation ``ref`` names (see the module docstring), turn by turn with its findings; None if none."""
    parsed = _REF.match(ref)
    if parsed is None:
        return None
    result: dict[str, Any] = {"ref": ref, "run": run.run_id, "outcome": None,
                              "persona": None, "model": None, "epoch": None, "objective": ""}
    if parsed["epoch"] is not None:
        epoch, index = int(parsed["epoch"]), int(parsed["sample"])
        samples = [s for row in metrics_rows(run) if row["epoch"] == epoch for s in samples_of(row)]
        if index >= len(samples):
            return None
        sample = samples[index]
        turns = sample["turns"]
        lines = [f"{t['role']}: {t['text']}" for t in turns]
        found = _matching_findings(run, lines, epoch=epoch)
        result.update(title=f"epoch {epoch}, sample conversation {index + 1}", epoch=epoch,
                      objective=sample["objective"], outcome=sample["outcome"])
        if not found:  # the text records kind and reason, not the turn
            found = [{"kind": h["kind"], "reason": h["reason"], **claim_and_truth(h["reason"])}
                     for h in sample["hallucinations"]]
    elif parsed["stem"] is not None:
        source, line = f"{parsed['stem']}.jsonl", int(parsed["line"])
        if source not in findings_files(run):
            return None
        records = read_findings(run, source)
        if line >= len(records):
            return None
        record = records[line]
        lines = [str(item) for item in record.get("conversation") or []]
        turns = with_turn_details([message(item) for item in lines], record.get("tool_calls"),
                                  record.get("reward_terms"))
        found = [_finding_entry(source, n, r) for n, r in enumerate(records) if r.get("conversation") == lines
                 and all(r.get(k) == record.get(k) for k in ("epoch", "model", "persona"))]
        result.update(title=f"{record.get('kind')} finding ({source}, line {line + 1})",
                      **{k: record.get(k) for k in ("persona", "model", "epoch", "objective")})
        result["focus"] = _finding_entry(source, line, record)["id"]
    else:
        source = f"{parsed['evaluation']}.json"
        report = evaluation_reports(run).get(source)
        if report is None:
            return None
        names = list(report["reports"])
        model_index, index = int(parsed["model"]), int(parsed["index"])
        if model_index >= len(names):
            return None
        samples = report["reports"][names[model_index]].get("sample_conversations") or []
        if index >= len(samples):
            return None
        lines = [str(item) for item in samples[index]]
        turns = [message(item) for item in lines]
        found = _matching_findings(run, lines, model=names[model_index])
        result.update(title=f"{names[model_index]} in {source}, sample {index + 1}", model=names[model_index])
    result["turns"] = [dict(turn, index=n) for n, turn in enumerate(turns)]
    result["not_recorded"] = {key: note for key, note in NOT_RECORDED.items()
                              if not any(DETAIL_KEYS[key] in turn for turn in turns)}
    result["unplaced"] = _place(result["turns"], found)
    result["finding_count"] = len(found)
    return result


def evaluation_reports(run: Run) -> dict[str, dict[str, Any]]:
    """Each evaluation file of the run that holds reports: ``{"command", "reports": {model: report}}``."""
    found = {}
    for name in EVALUATION_FILES:
        document = run.read_json(name)
        if isinstance(document, dict) and isinstance(document.get("reports"), dict) and document["reports"]:
            found[name] = document
    return found


def evaluations(run: Run) -> list[dict[str, Any]]:
    """The run's evaluation reports side by side: every number each report holds, one column per model (base,
    trained, scripted ... in the report's order), hallucinations per kind, and refs to the sample conversations."""
    tables = []
    for source, document in evaluation_reports(run).items():
        reports: dict[str, dict[str, Any]] = document["reports"]
        names = list(reports)
        keys: list[str] = []
        for report in reports.values():
            keys += [k for k, v in report.items() if isinstance(v, int | float) and not isinstance(v, bool)
                     and k not in keys]
        rows = [{"metric": k, "values": [reports[n].get(k) for n in names]} for k in keys]
        kinds = sorted({kind for r in reports.values() for kind in r.get("hallucinations_by_kind") or {}})
        rows += [{"metric": f"hallucinations: {kind}",
                  "values": [(reports[n].get("hallucinations_by_kind") or {}).get(kind, 0) for n in names]}
                 for kind in kinds]
        stem = source.removesuffix(".json")
        samples = [{"model": n, "refs": [f"eval-{stem}-{m}-{i}" for i in range(len(
            reports[n].get("sample_conversations") or []))]} for m, n in enumerate(names)]
        mode = next((r.get("mode") for r in reports.values() if r.get("mode")), None)
        tables.append({"source": source, "command": document.get("command"), "mode": mode, "models": names,
                       "rows": rows, "samples": samples})
    return tables
