"""Evaluate an auto-user on held-out objectives and write a JSON + Markdown report.

    python training/evaluate.py --model base|scripted|PATH --config CONFIG --episodes N [--seeds K]
        [--objectives FILE] [--mode cooperative|adversarial] [--out DIR]
    python training/evaluate.py --compare A B [C ...] --config CONFIG --episodes N ...

``base`` is the config's untrained base model; PATH is a ``final_model/`` or ``checkpoint-N/``; ``scripted`` is
the hand-written attacker of each episode's persona (``fuzzing.personas``; the fuzzing baseline). A broken model
directory exits with code 2 and one line naming the file, before anything is sampled. Every model is run
on the same objectives and seeds: ``ceil(N / K)`` held-out objectives, K seeds each (pass^K needs K > 1).
In adversarial mode every exposed hallucination is also written to ``findings.jsonl`` and ``findings.md``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from training.rollout import EpisodeRecord


def evaluate_model(model: str, config, episodes: int, seeds: int,
                   objectives: list) -> tuple[dict[str, Any], list[EpisodeRecord]]:
    """Run ``episodes`` conversations with the auto-user ``model`` (or the scripted attackers) on ``objectives``,
    ``seeds`` seeds each, through the one evaluation path (``training.evaluation``); the report and the episodes."""
    from training.evaluation import SCRIPTED, load_auto_user, run_evaluation
    from training.seeds import evaluation_plan

    agent = load_auto_user("base" if model == SCRIPTED else model, config)  # scripted: the same state tokenizer
    name = SCRIPTED if model == SCRIPTED else agent.config.model_name
    plan = evaluation_plan(objectives, seeds, episodes)
    return run_evaluation(None if model == SCRIPTED else agent, config, plan, name, agent.tokenizer, seeds)


def evaluation_objectives(config, episodes: int, seeds: int, objectives_file: str | None) -> list:
    """The first ``ceil(episodes / seeds)`` held-out (or file) objectives; ValueError when there are fewer, since
    repeating one would count its runs twice in pass^k."""
    from environment.objectives import load_objectives, load_objectives_jsonl

    if objectives_file:
        objectives = load_objectives_jsonl(objectives_file)
    else:
        objectives = load_objectives(config.environment, config.evaluation.eval_objectives_file)[1]
    needed = math.ceil(episodes / seeds)
    if needed > len(objectives):
        raise ValueError(f"--episodes {episodes} with --seeds {seeds} needs {needed} objectives, "
                         f"only {len(objectives)} available (give fewer episodes or more seeds)")
    return objectives[:needed]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="'base', 'scripted' (the personas' hand-written attackers) or a checkpoint "
                                        "/ final_model directory")
    parser.add_argument("--compare", nargs="+", metavar="MODEL", help="evaluate two or more models side by side")
    parser.add_argument("--config", default="configs/ppo_training_config.yaml")
    parser.add_argument("--episodes", type=int, default=16)
    parser.add_argument("--seeds", type=int, default=2, help="seeds per objective (the k of pass^k)")
    parser.add_argument("--objectives", default=None, help="JSONL of objectives (default: the held-out split)")
    parser.add_argument("--mode", choices=["cooperative", "adversarial"], default=None)
    parser.add_argument("--out", default=None, help="report directory (default: evaluation_results/)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE")
    args = parser.parse_args(argv)
    if bool(args.model) == bool(args.compare):
        parser.error("give exactly one of --model or --compare")
    if args.compare and len(args.compare) < 2:
        parser.error("--compare needs two or more models")
    if args.episodes < 1 or args.seeds < 1:
        parser.error("--episodes and --seeds must be >= 1")
    from training.config import ConfigError, load_config

    overrides = args.overrides + ([f"mode={args.mode}"] if args.mode else [])
    try:
        config = load_config(args.config, overrides)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    # The model libraries load only once the config is known to be good (a bad one fails in about a second).
    from training.evaluation import SCRIPTED, markdown
    from training.findings import write_comparison_findings

    for path in ([args.objectives] if args.objectives else []) + [m for m in (args.compare or [args.model])
                                                                   if m not in ("base", SCRIPTED)]:
        if not Path(path).exists():
            print(f"error: no such file or directory {path}", file=sys.stderr)
            return 2
    try:
        objectives = evaluation_objectives(config, args.episodes, args.seeds, args.objectives)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from agents.auto_user.model_files import check_model_dir
    from agents.auto_user.models import ModelUnavailableError, silence_known_library_warnings

    silence_known_library_warnings()

    models = args.compare or [args.model]
    if SCRIPTED in models and not config.fuzzing.personas:
        print("error: the scripted attackers play each episode's persona: set fuzzing.personas",
              file=sys.stderr)
        return 2
    try:
        for model in models:  # every directory is checked before the first model is evaluated
            if model not in ("base", SCRIPTED):
                check_model_dir(Path(model))
        results = {m: evaluate_model(m, config, args.episodes, args.seeds, objectives) for m in models}
    except ModelUnavailableError as exc:  # one line naming the file; also raised for NaN/inf weights
        print(f"model error: {exc}", file=sys.stderr)
        return 2
    reports = {m: report for m, (report, _) in results.items()}
    out = Path(args.out or "evaluation_results")
    out.mkdir(parents=True, exist_ok=True)
    command = "python training/evaluate.py " + " ".join(argv if argv is not None else sys.argv[1:])
    if config.mode == "adversarial":
        write_comparison_findings(out, {m: records for m, (_, records) in results.items()},
                                  f"Fuzzing findings: {command}")
    (out / "evaluation.json").write_text(json.dumps({"command": command, "reports": reports}, indent=1,
                                                    default=float))
    (out / "evaluation.md").write_text(markdown(reports, command))
    print(markdown(reports, command))
    return 0


if __name__ == "__main__":
    sys.exit(main())
