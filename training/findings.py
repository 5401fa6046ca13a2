"""Fuzzing findings: every hallucination a conversation exposed, as ``findings.jsonl`` and a readable ``findings.md``.

One JSON record per exposed hallucination: the conversation, the kind, the verifier's reason, the user turn that
triggered the false claim (and its text), the persona, the epoch (training) or model (evaluation). ``findings.md``
counts them per kind and shows the most diverse examples, deduplicated by the triggering message. A user fuzzing
their own agent reads ``findings.md`` first.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from agents.booking.base import HallucinationKind
from agents.nlu import words
from training.novelty import bigrams
from training.rollout import EpisodeRecord

FINDINGS_JSONL = "findings.jsonl"
FINDINGS_MD = "findings.md"


def findings_from(records: Iterable[EpisodeRecord], **labels: Any) -> list[dict[str, Any]]:
    """One finding per exposed hallucination of ``records``; ``labels`` (e.g. ``epoch=3``, ``model="base"``) are
    added to each."""
    findings = []
    for record in records:
        outcome = record.outcome
        users = record.user_messages
        for (kind, reason), turn in zip(outcome.hallucinations, outcome.hallucination_turns, strict=True):
            findings.append({
                **labels,
                "kind": str(kind),
                "counts_as": str(HallucinationKind(kind).injected_kind),
                "reason": reason,
                "trigger_turn": turn,
                "trigger_message": users[turn - 1] if turn and turn <= len(users) else None,
                "persona": outcome.persona,
                "objective": record.objective.text,
                "objective_id": record.objective.objective_id,
                "conversation": [f"{m.role}: {m.text}" for m in record.transcript],
            })
    return findings


def append_findings(path: Path, findings: Sequence[dict[str, Any]], drop_epochs_from: int | None = None) -> None:
    """Append ``findings`` to the JSONL file at ``path``; with ``drop_epochs_from``, records of that epoch and later
    (left by a run that is being resumed) are removed first. Written to a temporary file and renamed."""
    kept = []
    if path.exists():
        for line in path.read_text().splitlines():
            record = json.loads(line)
            if drop_epochs_from is None or record.get("epoch") is None or record["epoch"] < drop_epochs_from:
                kept.append(line)
    lines = kept + [json.dumps(finding, default=str) for finding in findings]
    tmp = path.with_suffix(".jsonl.tmp")
    tmp.write_text("".join(line + "\n" for line in lines))
    tmp.replace(path)


def read_findings(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def trigger_key(finding: dict[str, Any]) -> str:
    """The triggering message, normalised (case, punctuation, spacing) for deduplication."""
    return " ".join(words(finding.get("trigger_message") or "")).lower()


def diverse_examples(findings: Sequence[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    """Up to ``count`` findings with distinct triggering messages, picked greedily so that each adds the most
    word bigrams not seen in those already picked (the first: the one with the most)."""
    unique: dict[str, dict[str, Any]] = {}
    for finding in findings:
        unique.setdefault(trigger_key(finding), finding)
    pool, picked, seen = list(unique.values()), [], set()
    while pool and len(picked) < count:
        best = max(pool, key=lambda f: len(bigrams(f.get("trigger_message")) - seen))
        pool.remove(best)
        picked.append(best)
        seen |= bigrams(best.get("trigger_message"))
    return picked


def findings_markdown(findings: Sequence[dict[str, Any]], title: str = "Fuzzing findings",
                      examples_per_kind: int = 3) -> str:
    """Counts per kind (and per model or persona where recorded) and the most diverse examples of each kind."""
    lines = [f"# {title}", ""]
    if not findings:
        return "\n".join(lines + ["No hallucination was exposed.", ""])
    by_kind: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for finding in findings:
        by_kind[finding["kind"]].append(finding)
    distinct = len({trigger_key(f) for f in findings})
    lines += [f"{len(findings)} hallucinations exposed, {len(by_kind)} kinds, {distinct} distinct triggering "
              "messages.", "", "| kind | counts as | exposed | distinct triggers |", "|---|---|---|---|"]
    for kind, items in sorted(by_kind.items(), key=lambda item: -len(item[1])):
        lines.append(f"| {kind} | {items[0]['counts_as']} | {len(items)} | {len({trigger_key(f) for f in items})} |")
    for label in ("model", "persona"):
        counts = Counter(str(f.get(label)) for f in findings if f.get(label) is not None)
        if counts:
            lines += ["", f"| {label} | exposed |", "|---|---|"]
            lines += [f"| {name} | {n} |" for name, n in sorted(counts.items(), key=lambda item: -item[1])]
    for kind, items in sorted(by_kind.items(), key=lambda item: -len(item[1])):
        lines += ["", f"## {kind}", ""]
        for finding in diverse_examples(items, examples_per_kind):
            where = ", ".join(f"{label} {finding[label]}" for label in ("model", "epoch", "persona")
                              if finding.get(label) is not None)
            lines += [f"- **Trigger (user turn {finding['trigger_turn']}):** {finding['trigger_message']!r}",
                      f"  - verifier: {finding['reason']}" + (f" ({where})" if where else ""), "", "  ```"]
            lines += [f"  {line}" for line in finding["conversation"]] + ["  ```", ""]
    return "\n".join(lines).rstrip() + "\n"


def write_findings_report(directory: Path, title: str = "Fuzzing findings") -> Path:
    """``findings.md`` in ``directory`` from its ``findings.jsonl``."""
    path = directory / FINDINGS_MD
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(findings_markdown(read_findings(directory / FINDINGS_JSONL), title))
    tmp.replace(path)
    return path


def write_epoch_findings(output_dir: Path, epoch: int, findings: Sequence[dict[str, Any]], writer: Any = None) -> None:
    """A training epoch's findings: appended to ``findings.jsonl`` (replacing any left from this epoch on by a
    resumed run), ``findings.md`` rewritten, and, given a TensorBoard ``SummaryWriter``, the epoch's most diverse
    examples shown in its text tab."""
    append_findings(output_dir / FINDINGS_JSONL, findings, drop_epochs_from=epoch)
    write_findings_report(output_dir, f"Fuzzing findings of {output_dir}")
    if writer is None:
        return
    for index, finding in enumerate(diverse_examples(findings, 2)):
        text = (f"**{finding['kind']}** (user turn {finding['trigger_turn']}): {finding['reason']}\n\n"
                + "\n".join(finding["conversation"]))
        writer.add_text(f"findings/{index + 1}", text.replace("\n", "  \n"), epoch)
