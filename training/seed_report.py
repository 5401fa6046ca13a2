"""Learning over seeds: mean, spread and every seed of the headline metrics of several evaluation reports.

    python training/seed_report.py RUN_OR_REPORT [RUN_OR_REPORT ...] [--model trained] [--out FILE.md]
        [--curves RUN_DIR [RUN_DIR ...]]

Each argument is a training output directory (its ``final_evaluation.json``, written by the end-of-run comparison)
or an ``evaluation.json`` written by ``training/evaluate.py`` (of ``--compare base PATH``: PATH's column is read as
``trained``; of ``--model PATH``: PATH's column is read as ``model``; so runs whose models lie in different
directories line up). Adversarial (fuzzing) reports add the fuzzer's rows: the exposing share, persona fidelity,
kinds exposed, attack moves, distinct exposing first messages and the distinct-2 of the exposing triggers. The same
held-out objectives and seeds must have been evaluated in each (the runs share ``environment.objectives_seed``);
the report says how many episodes each holds.
``--curves`` adds each training run's per-epoch curves (from its ``training_metrics.json``): where seeds part ways.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path
from typing import Any

from training.report_tables import FINAL_TABLE

# The end-of-run table's rows, then overall success (all objectives; the only success figure of reports before the
# warm start, round 9) and the turns.
METRICS = [*[row for row in FINAL_TABLE if row[1] != "mean_turns"], ("success (all objectives)", "success_rate")]
# The fuzzer's rows (issue 23), shown when a report is of adversarial mode.
FUZZING_METRICS = [("exposing share", "hallucination_rate"), ("persona fidelity", "persona_fidelity"),
                   ("kinds exposed", "kinds_exposed"), ("episodes with an attack move", "attack_rate"),
                   ("distinct exposing first messages", "distinct_exposing_first_messages"),
                   ("distinct-2 of the exposing triggers", "exposing_distinct_2")]
STANDARD_MODELS = ("base", "warm start", "trained", "scripted")


def load_reports(path: Path) -> dict[str, dict[str, Any]]:
    """The per-model reports of a run directory or an evaluation JSON file."""
    file = path / "final_evaluation.json" if path.is_dir() else path
    if not file.exists():
        raise FileNotFoundError(f"{file}: no such report (run with evaluation.final_comparison > 0, or evaluate.py)")
    reports = json.loads(file.read_text())["reports"]
    paths = [name for name in reports if name not in STANDARD_MODELS]  # columns named by a model's directory
    if "base" in reports and len(reports) == 2 and len(paths) == 1:  # evaluate.py --compare base PATH
        reports["trained"] = reports.pop(paths[0])
    elif len(reports) == 1 and len(paths) == 1:  # evaluate.py --model PATH
        reports["model"] = reports.pop(paths[0])
    return reports


def spread(values: list[float]) -> str:
    """``mean ± sample standard deviation`` (just the value for one run)."""
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return "nan"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def seed_table(runs: dict[str, dict[str, dict[str, Any]]], models: list[str]) -> str:
    """Markdown: one row per metric and model, mean ± std over the runs, then each run's value."""
    names = list(runs)
    lines = ["| metric | model | mean ± std | " + " | ".join(names) + " |", "|---|---|---|" + "---|" * len(names)]
    adversarial = any(report.get("mode") == "adversarial" for reports in runs.values() for report in reports.values())
    for label, key in METRICS + (FUZZING_METRICS if adversarial else []):
        for model in models:
            values = [float(runs[name][model].get(key, math.nan)) for name in names]
            lines.append(f"| {label} | {model} | {spread(values)} | " + " | ".join(f"{v:.3f}" for v in values) + " |")
    episodes = {name: runs[name][models[0]]["episodes"] for name in names}
    lines += ["", "Episodes per model and run: " + ", ".join(f"{n}: {e}" for n, e in episodes.items()) + "."]
    return "\n".join(lines) + "\n"


CURVES = [("training success", "env/success_rate"), ("training reward", "env/reward_mean"),
          ("entropy (nats/token)", "ppo/policy/entropy"), ("KL to reference (per sequence)", "objective/kl"),
          ("update kept", "update/accepted")]


def curve_table(runs: list[Path]) -> str:
    """Markdown: for each curve, one row per run with its value at every epoch."""
    records = {}
    for run in runs:
        file = run / "training_metrics.json" if run.is_dir() else run
        if not file.exists():
            raise FileNotFoundError(f"{file}: no such file (a training output directory has training_metrics.json)")
        records[str(run)] = json.loads(file.read_text())
    epochs = max(len(r) for r in records.values())
    lines = ["| curve | run | " + " | ".join(f"epoch {e}" for e in range(1, epochs + 1)) + " |",
             "|---|---|" + "---|" * epochs]
    for label, key in CURVES:
        for name, recs in records.items():
            cells = [f"{float(r.get(key, math.nan)):.2f}" for r in recs] + [""] * (epochs - len(recs))
            lines.append(f"| {label} | {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--model", action="append", default=None,
                        help="model column(s) of the reports (default: every model of the first report)")
    parser.add_argument("--out", type=Path, default=None, help="also write the table to this Markdown file")
    parser.add_argument("--curves", nargs="+", type=Path, default=[],
                        help="training output directories whose per-epoch curves to add")
    args = parser.parse_args(argv)
    try:
        runs = {str(path): load_reports(path) for path in args.runs}
        curves = "\n## Training curves\n\n" + curve_table(args.curves) if args.curves else ""
    except (FileNotFoundError, json.JSONDecodeError, KeyError) as exc:
        print(f"error: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 2
    models = args.model or list(next(iter(runs.values())))
    missing = [f"{name}: {model}" for name, reports in runs.items() for model in models if model not in reports]
    if missing:
        print(f"error: no report for {missing[0]}", file=sys.stderr)
        return 2
    table = seed_table(runs, models) + curves
    if args.out:
        args.out.write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
