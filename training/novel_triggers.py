"""Novel triggers: how many of a fuzzer's exposing user turns are not a copy of what its warm start was shown.

A fuzzer warm-started on persona demonstrations (issue 23) could expose hallucinations only by replaying the
demonstrations' sentences; what it found beyond them is the share of its triggers that are *novel*: a trigger
(``trigger_message`` of a finding, :mod:`training.findings`) whose highest word-bigram Jaccard similarity to every
demonstration line (the dataset's ``completion`` column) is below ``threshold`` (0.3, the issue's bar).

Both sides are compared as trigger shapes (:func:`training.findings.trigger_shape`: values such as flight numbers,
cities and dates replaced by placeholders), so a demonstrated sentence replayed with another flight number is no
novelty, and each shape is framed by start and end marks, so a one-word trigger ("B6481?") still has bigrams.

    python -m training.novel_triggers --findings RUN/findings.jsonl --demonstrations RUN/warm_start/demonstrations

Triggers are counted per finding (two false claims answering one message count that message twice). The command
prints one JSON line per model of the findings file (a training run's own ``findings.jsonl``: "training rollouts";
its ``final_findings/findings.jsonl``: each column of the held-out comparison): its triggers, the novel ones, their
share, and the three most novel triggers with their nearest demonstration line.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from training.findings import read_findings, trigger_shape
from training.novelty import jaccard

NOVEL_JACCARD = 0.3


def shape_bigrams(text: str) -> frozenset[tuple[str, str]]:
    """The word bigrams of ``text``'s trigger shape, with start and end marks."""
    tokens = ["<start>", *trigger_shape(text).split(), "<end>"]
    return frozenset(zip(tokens, tokens[1:], strict=False))


def nearest_lines(triggers: Sequence[str], lines: Iterable[str]) -> list[tuple[float, str]]:
    """For each trigger, its highest Jaccard similarity to any of ``lines`` and that line ((0.0, "") when none)."""
    references: dict[frozenset, str] = {}
    for line in lines:
        references.setdefault(shape_bigrams(line), line)  # many demonstration lines share a shape
    nearest = []
    for trigger in triggers:
        grams = shape_bigrams(trigger)
        nearest.append(max(((jaccard(grams, ref), line) for ref, line in references.items()), default=(0.0, "")))
    return nearest


def novelty_report(findings: Sequence[dict[str, Any]], lines: Sequence[str],
                   threshold: float = NOVEL_JACCARD) -> list[dict[str, Any]]:
    """One summary per model of ``findings`` (in first-seen order) against the demonstration ``lines``."""
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    by_model: dict[str, list[str]] = {}
    for finding in findings:
        if finding.get("trigger_message"):
            model = finding.get("model") or "training rollouts"  # a run's own findings.jsonl has epochs, no model
            by_model.setdefault(str(model), []).append(str(finding["trigger_message"]))
    reports = []
    for model, triggers in by_model.items():
        nearest = nearest_lines(triggers, lines)
        novel = [similarity < threshold for similarity, _ in nearest]
        ranked = sorted(zip(nearest, triggers, strict=True), key=lambda item: item[0][0])
        reports.append({"model": model, "triggers": len(triggers), "novel": sum(novel),
                        "novel_share": sum(novel) / len(triggers), "threshold": threshold,
                        "most_novel": [{"trigger": trigger, "jaccard": round(similarity, 3), "nearest": line}
                                       for (similarity, line), trigger in ranked[:3]]})
    return reports


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--findings", type=Path, required=True, help="a findings.jsonl (training.findings)")
    parser.add_argument("--demonstrations", type=Path, required=True,
                        help="the warm start's demonstrations (a saved datasets.Dataset with a completion column)")
    parser.add_argument("--threshold", type=float, default=NOVEL_JACCARD)
    args = parser.parse_args(argv)
    from training.warm_start import WarmStartDataError, load_demonstrations

    if not args.findings.is_file():
        parser.exit(2, f"error: --findings {args.findings}: no such file\n")
    try:
        lines = load_demonstrations(args.demonstrations)["completion"]
        reports = novelty_report(read_findings(args.findings), lines, args.threshold)
    except (WarmStartDataError, ValueError) as exc:
        parser.exit(2, f"error: {exc}\n")
    for report in reports:
        print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
