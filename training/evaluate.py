"""Evaluate an auto-user on held-out objectives and write a JSON + Markdown report.

    python training/evaluate.py --model base|scripted|PATH --config CONFIG --episodes N [--seeds K]
        [--objectives FILE] [--mode cooperative|adversarial] [--out DIR]
    python training/evaluate.py --compare A B [C ...] --config CONFIG --episodes N ...

``base`` is the config's untrained base model; PATH is a ``final_model/`` or ``checkpoint-N/``; ``scripted`` is
the hand-written attacker of each episode's persona (``environment.personas``; the fuzzing baseline). A broken model
directory exits with code 2 and one line naming the file, before anything is sampled. Every model is run
on the same objectives and seeds: ``ceil(N / K)`` held-out objectives, K seeds each (pass^K needs K > 1).
In adversarial mode every exposed hallucination is also written to ``findings.jsonl`` and ``findings.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from environment.personas import ATTACK_MOVES
from environment.rewards import is_repetition
from training.findings import FINDINGS_JSONL, append_findings, findings_from, write_findings_report
from training.metrics import distinct_n, episode_metrics, hallucination_kind_counts
from training.rollout import EpisodeRecord

HEADLINE = ["success_rate", "hallucination_rate", "hallucinations_per_episode", "reward_mean",
            "role_confusion_rate", "repetition_rate", "collapse_distinct_first_messages", "mean_turns",
            "distinct_1", "distinct_2", "pass^1", "pass^k"]
FUZZING = ["kinds_exposed", "exposing_distinct_2", "distinct_exposing_first_messages", "turns_to_first_exposure",
           "attack_rate", "exposure_rate_when_attacking"]
SCRIPTED = "scripted"


def fuzzing_metrics(records: list[EpisodeRecord]) -> dict[str, Any]:
    """How well the episodes fuzz the agent: kinds exposed (of the agent's four), the diversity of the exposing
    attacks (distinct-2 of the triggering user turns; distinct first user turns of exposing episodes) and the
    user turns until the first exposure; how often the user made an attack move at all (pressure, discount, flight
    number, change of mind: ``environment.personas.attack_moves``) and how often an attacking episode exposed one."""
    findings = findings_from(records)
    exposing = [r for r in records if r.hallucinated]
    moves = [{move for turn in r.info["attack_moves"] for move in turn} for r in records]
    attacking = [r for r, made in zip(records, moves, strict=True) if made]
    firsts = [min(r.info["hallucination_turns"]) for r in exposing]
    return {
        "kinds_exposed": len({f["counts_as"] for f in findings}),
        "exposing_distinct_2": distinct_n([f["trigger_message"] for f in findings if f["trigger_message"]], 2),
        "distinct_exposing_first_messages": len({r.user_messages[0] for r in exposing if r.user_messages}),
        "turns_to_first_exposure": sum(firsts) / len(firsts) if firsts else math.nan,
        "attack_rate": len(attacking) / len(records) if records else math.nan,
        "exposure_rate_when_attacking": (sum(r.hallucinated for r in attacking) / len(attacking) if attacking
                                         else math.nan),
        "attack_moves": {move: sum(move in made for made in moves) for move in ATTACK_MOVES},
    }


def summarize(records: list[EpisodeRecord], seeds_per_objective: int) -> dict[str, Any]:
    """Every report metric for one model's episodes."""
    env = {k.removeprefix("env/"): v for k, v in episode_metrics(records).items()}
    user_turns = [(r.user_messages[i], r.user_messages[i - 1]) for r in records for i in range(1, len(r.user_messages))]
    firsts = [r.user_messages[0] for r in records if r.user_messages]
    by_objective: dict[str, list[bool]] = defaultdict(list)
    for record in records:
        by_objective[record.objective.objective_id].append(bool(record.info["success"]))
    complete = [runs for runs in by_objective.values() if len(runs) == seeds_per_objective]
    by_kind: dict[str, list[EpisodeRecord]] = defaultdict(list)
    for record in records:
        by_kind[record.objective.kind].append(record)
    return {
        **env,
        "episodes": len(records),
        "mean_turns": env["episode_length"],
        "repetition_rate": sum(is_repetition(a, b) for a, b in user_turns) / len(user_turns) if user_turns else 0.0,
        "collapse_distinct_first_messages": len(set(firsts)) / len(firsts) if firsts else 0.0,
        "pass^1": sum(sum(runs) / len(runs) for runs in complete) / len(complete) if complete else math.nan,
        "pass^k": sum(all(runs) for runs in complete) / len(complete) if complete else math.nan,
        "k": seeds_per_objective,
        "hallucinations_by_kind": hallucination_kind_counts(records),
        "by_objective_kind": {kind: {"episodes": len(rs), **{k.removeprefix("env/"): v for k, v in episode_metrics(
            rs).items() if k in ("env/success_rate", "env/hallucination_rate", "env/reward_mean")}}
            for kind, rs in sorted(by_kind.items())},
        "sample_conversations": [[f"{m.role}: {m.text}" for m in r.transcript] for r in records[:3]],
        **fuzzing_metrics(records),
    }


def load_auto_user(model: str, config):
    """The ``AutoUserAgent`` for ``model`` ("base": the config's base model, else a checkpoint path), sampling as
    the config says."""
    from agents.auto_user import AutoUserAgent, AutoUserConfig

    name = config.model.base_model if model == "base" else model
    agent = AutoUserAgent(AutoUserConfig(
        model_name=name, max_length=config.model.max_query_length, max_new_tokens=config.model.max_response_length,
        temperature=config.model.temperature, top_p=config.model.top_p, top_k=config.model.top_k,
        stop_at_newline=config.model.stop_at_newline, seed=config.seed, model_cache_dir=config.model.model_cache_dir,
        device="cpu" if config.hardware.cpu else None))
    agent.initialize_model()
    return agent


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


def evaluate_model(model: str, config, episodes: int, seeds: int,
                   objectives: list) -> tuple[dict[str, Any], list[EpisodeRecord]]:
    """Run ``episodes`` conversations with the auto-user ``model`` (or the scripted attackers) on ``objectives``,
    ``seeds`` seeds each; the report and the episodes."""
    from environment.conversation import BookingConversationEnvironment
    from environment.scripted_users import scripted_message
    from training.rollout import RolloutCollector

    agent = load_auto_user("base" if model == SCRIPTED else model, config)  # scripted: the same state tokenizer
    name = SCRIPTED if model == SCRIPTED else agent.config.model_name
    plan = [(objective, 50_000 + seed) for objective in objectives for seed in range(seeds)][:episodes]
    envs = [BookingConversationEnvironment(config.environment, worker_id=100 + i, tokenizer=agent.tokenizer,
                                           max_state_tokens=config.model.max_query_length)
            for i in range(config.ppo.num_envs)]
    calls = iter(range(10**9))
    if model == SCRIPTED:
        collector = RolloutCollector(envs, script=scripted_message)
    else:
        collector = RolloutCollector(envs, lambda prompts: agent.generate(prompts, seed=config.seed + next(calls)))
    loop = asyncio.new_event_loop()
    try:
        records, stats = loop.run_until_complete(collector.collect(plan, description=f"evaluate {Path(name).name}"))
        for env in envs:
            loop.run_until_complete(env.aclose())
    finally:
        loop.close()
    report = summarize(records, seeds)
    report.update({"model": name, "mode": config.environment.reward.objective, "environment_errors": stats.errors})
    return report, records


def _fmt(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def markdown(reports: dict[str, dict[str, Any]], command: str) -> str:
    names = list(reports)
    first = reports[names[0]]
    lines = [f"# Auto-user evaluation ({first['mode']} mode)", "", f"Command: `{command}`", "",
             f"{first['episodes']} episodes per model on the same held-out objectives and seeds "
             f"(k = {first['k']} seeds per objective).", "",
             "| metric | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    fuzzing = FUZZING if first["mode"] == "adversarial" else []
    for key in HEADLINE + fuzzing + [k for k in first if k.startswith("reward/")]:
        lines.append(f"| {key} | " + " | ".join(_fmt(reports[n].get(key)) for n in names) + " |")
    kinds = sorted({kind for r in reports.values() for kind in r["hallucinations_by_kind"]})
    for kind in kinds:
        lines.append(f"| hallucinations: {kind} | " + " | ".join(
            str(reports[n]["hallucinations_by_kind"].get(kind, 0)) for n in names) + " |")
    if fuzzing:
        for move in ATTACK_MOVES:
            lines.append(f"| episodes with attack move: {move} | " + " | ".join(
                str(reports[n].get("attack_moves", {}).get(move, 0)) for n in names) + " |")
    lines += ["", "## By objective type", "", "| model | type | episodes | success | hallucination | reward |",
              "|---|---|---|---|---|---|"]
    for name in names:
        for kind, row in reports[name]["by_objective_kind"].items():
            lines.append(f"| {name} | {kind} | {row['episodes']} | {_fmt(row['success_rate'])} | "
                         f"{_fmt(row['hallucination_rate'])} | {_fmt(row['reward_mean'])} |")
    lines += ["", "## Sample conversations", ""]
    for name in names:
        for transcript in reports[name]["sample_conversations"][:1]:
            lines += [f"**{name}**", "", "```", *transcript, "```", ""]
    return "\n".join(lines) + "\n"


FINAL_TABLE = [("success", "success_rate"), ("reward", "reward_mean"), ("role confusion", "role_confusion_rate"),
               ("hallucinations / episode", "hallucinations_per_episode"), ("repetition", "repetition_rate"),
               ("turns", "mean_turns")]


def final_table(reports: dict[str, dict[str, Any]]) -> str:
    """A short plain-text table of the headline metrics, one column per model."""
    names = list(reports)
    width = max(len(label) for label, _ in FINAL_TABLE) + 2
    lines = ["".ljust(width) + "".join(n.rjust(10) for n in names)]
    for label, key in FINAL_TABLE:
        lines.append(label.ljust(width) + "".join(_fmt(reports[n].get(key)).rjust(10) for n in names))
    return "\n".join(lines)


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

    overrides = args.overrides + ([f"environment.reward.objective={args.mode}"] if args.mode else [])
    try:
        config = load_config(args.config, overrides)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
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
    from agents.auto_user.models import ModelUnavailableError

    models = args.compare or [args.model]
    if SCRIPTED in models and not config.environment.personas:
        print("error: the scripted attackers play each episode's persona: set environment.personas",
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
    if config.environment.reward.objective == "adversarial":
        (out / FINDINGS_JSONL).unlink(missing_ok=True)
        append_findings(out / FINDINGS_JSONL, [f for m, (_, records) in results.items()
                                               for f in findings_from(records, model=m)])
        write_findings_report(out, f"Fuzzing findings: {command}")
    (out / "evaluation.json").write_text(json.dumps({"command": command, "reports": reports}, indent=1,
                                                    default=float))
    (out / "evaluation.md").write_text(markdown(reports, command))
    print(markdown(reports, command))
    return 0


if __name__ == "__main__":
    sys.exit(main())
