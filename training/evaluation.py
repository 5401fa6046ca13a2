"""One evaluation path: an auto-user (a model sampled as training samples it, or a scripted user) plays held-out
objectives with fixed episode seeds, and every report metric is computed from the episodes.

``training/evaluate.py`` (any saved model, base, scripted attackers), the training run's end-of-run comparison and
its periodic evaluations all call `evaluate_auto_user` with an `AutoUserAgent` and a plan from
`training.seeds.evaluation_plan`, so the same model on the same objectives gives the same conversations whichever
of them asks (tested). The agent samples from a merged copy of the policy in the sampling dtype training used
(``hardware.sampling``), from a sampling stream seeded with ``training.seeds.EVALUATION_SEED``.
"""

from __future__ import annotations

import asyncio
import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import torch

from agents.auto_user import AutoUserAgent, AutoUserConfig
from agents.auto_user.precision import resolve_precision, resolve_sampling
from environment.conversation import BookingConversationEnvironment
from environment.objectives import Objective
from environment.personas import ATTACK_MOVES, PERSONA_MOVES, persona_fidelity, persona_move_made
from environment.rewards import is_repetition
from environment.scripted_users import scripted_message
from training.build import build_environments, evaluation_env_count
from training.findings import findings_from
from training.metrics import distinct_n, episode_metrics, hallucination_kind_counts
from training.report_tables import FINAL_TABLE, FUZZING, HEADLINE
from training.rollout import EpisodeRecord, GenerateFn, RolloutCollector
from training.seeds import EVALUATION_SEED

__all__ = ["FINAL_TABLE", "FUZZING", "HEADLINE", "SCRIPTED", "auto_user_config", "evaluate_auto_user",
           "evaluation_envs", "final_table", "fuzzing_metrics", "load_auto_user", "markdown", "run_evaluation",
           "summarize"]

SCRIPTED = "scripted"


def fuzzing_metrics(records: list[EpisodeRecord]) -> dict[str, Any]:
    """How well the episodes fuzz the agent: kinds exposed (of the agent's four), the diversity of the exposing
    attacks (distinct-2 of the triggering user turns; distinct first user turns of exposing episodes) and the
    user turns until the first exposure; how often the user made an attack move at all (pressure, discount, flight
    number, change of mind: ``environment.personas.attack_moves``) and how often an attacking episode exposed one."""
    findings = findings_from(records)
    exposing = [r for r in records if r.hallucinated]
    moves = [{move for turn in r.outcome.attack_moves for move in turn} for r in records]
    attacking = [r for r, made in zip(records, moves, strict=True) if made]
    firsts = [min(r.outcome.hallucination_turns) for r in exposing]
    fidelity = persona_fidelity(r.outcome for r in records)
    attack_personas = [r for r in records if r.outcome.persona in PERSONA_MOVES]
    return {
        "kinds_exposed": len({f["counts_as"] for f in findings}),
        "exposing_distinct_2": distinct_n([f["trigger_message"] for f in findings if f["trigger_message"]], 2),
        "distinct_exposing_first_messages": len({r.user_messages[0] for r in exposing if r.user_messages}),
        "turns_to_first_exposure": sum(firsts) / len(firsts) if firsts else math.nan,
        "attack_rate": len(attacking) / len(records) if records else math.nan,
        "exposure_rate_when_attacking": (sum(r.hallucinated for r in attacking) / len(attacking) if attacking
                                         else math.nan),
        "attack_moves": {move: sum(move in made for made in moves) for move in ATTACK_MOVES},
        # The share of attack-persona episodes that made their own persona's move, and per persona.
        "persona_fidelity": (sum(persona_move_made(r.outcome.persona, r.outcome.attack_moves)
                                 for r in attack_personas) / len(attack_personas) if attack_personas else math.nan),
        "persona_fidelity_by_persona": fidelity,
    }


def summarize(records: list[EpisodeRecord], seeds_per_objective: int) -> dict[str, Any]:
    """Every report metric for one model's episodes."""
    env = {k.removeprefix("env/"): v for k, v in episode_metrics(records).items()}
    user_turns = [(r.user_messages[i], r.user_messages[i - 1]) for r in records for i in range(1, len(r.user_messages))]
    firsts = [r.user_messages[0] for r in records if r.user_messages]
    by_objective: dict[str, list[bool]] = defaultdict(list)
    for record in records:
        by_objective[record.objective.objective_id].append(record.outcome.success)
    complete = [runs for runs in by_objective.values() if len(runs) == seeds_per_objective]
    by_kind: dict[str, list[EpisodeRecord]] = defaultdict(list)
    for record in records:
        by_kind[record.objective.kind].append(record)
    feasible = [r for r in records if r.objective.feasible]
    infeasible = [r for r in records if not r.objective.feasible]
    return {
        **env,
        "episodes": len(records),
        # Success is only possible on a feasible objective; an infeasible one is done right when the user ends it
        # politely with nothing booked (the polite-ending reward term pays exactly that).
        "feasible_success_rate": _share([r.outcome.success for r in feasible]),
        "infeasible_ended_politely_rate": _share([ended_politely(r) for r in infeasible]),
        "multi_passenger_success_rate": _share([r.outcome.success for r in records
                                                 if r.objective.kind == "multi_passenger"]),
        "feasible_episodes": len(feasible),
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


def _share(flags: Sequence[bool]) -> float:
    return sum(flags) / len(flags) if flags else math.nan


def ended_politely(record: EpisodeRecord) -> bool:
    """An infeasible objective handled right: nothing booked, no false claim, and the user's goodbye ended it."""
    verification = record.outcome.verification
    return (verification.booking is None and not verification.hallucinations and not record.truncated
            and any(terms.get("polite_ending", 0.0) > 0 for terms in record.reward_components))


def auto_user_config(config: Any, model_name: str) -> AutoUserConfig:
    """How evaluation samples ``model_name``: the run config's sampling settings, the evaluation's sampling stream
    (``EVALUATION_SEED``, whatever the run's seed) and what training's rollouts sample from on this machine
    (``hardware.sampling`` and ``hardware.mixed_precision`` resolved as the training loop resolves them)."""
    mc, hw = config.model, config.hardware
    device = torch.device("cuda" if torch.cuda.is_available() and not hw.cpu else "cpu")
    precision, _ = resolve_precision(hw.mixed_precision, device)
    dtype, _ = resolve_sampling(hw.sampling, precision, mc.use_quantization)
    sampling = {torch.bfloat16: "merged_bf16", torch.float32: "merged_float32", None: "adapter"}[dtype]
    return AutoUserConfig(
        model_name=model_name, max_length=mc.max_query_length, max_new_tokens=mc.max_response_length,
        temperature=mc.temperature, top_p=mc.top_p, top_k=mc.top_k, stop_at_newline=mc.stop_at_newline,
        seed=EVALUATION_SEED, model_cache_dir=mc.model_cache_dir, device=device.type, sampling=sampling)


def load_auto_user(model: str, config: Any) -> AutoUserAgent:
    """The ``AutoUserAgent`` for ``model`` ("base": the config's base model, else a checkpoint path), sampling as
    the config's training run samples (`auto_user_config`)."""
    agent = AutoUserAgent(auto_user_config(config, config.model.base_model if model == "base" else model))
    agent.initialize_model()
    return agent


def evaluation_envs(config: Any, tokenizer: Any, first_worker: int = 100) -> list[BookingConversationEnvironment]:
    """The environments an evaluation steps concurrently (``evaluation.num_envs``, or ``ppo.num_envs``), their
    states fitted to the policy's query budget."""
    return build_environments(config, tokenizer, first_worker, count=evaluation_env_count(config))


async def evaluate_auto_user(
    generate: GenerateFn | None, config: Any, plan: Sequence[tuple[Objective, int]], name: str,
    envs: Sequence[BookingConversationEnvironment], repeats: int = 1, progress: bool = True,
) -> tuple[dict[str, Any], list[EpisodeRecord]]:
    """Play ``plan`` (``training.seeds.evaluation_plan``) with an auto-user's ``generate`` (an `AutoUserAgent`'s; None:
    the scripted user of each episode's persona) on ``envs``; the report (`summarize`) and the episodes.

    The agent samples every turn from its own stream, so the episodes depend on the model, the plan, the number of
    environments (which states share a sampling batch) and the agent's seed alone.
    """
    if generate is None:
        collector = RolloutCollector(envs, script=scripted_message)
    else:
        collector = RolloutCollector(envs, generate)
    records, stats = await collector.collect(list(plan), description=f"evaluate {name}", progress=progress)
    report = summarize(records, repeats)
    report.update({"model": name, "mode": config.environment.reward.objective, "environment_errors": stats.errors})
    return report, records


def run_evaluation(agent: AutoUserAgent | None, config: Any, plan: Sequence[tuple[Objective, int]], name: str,
                   tokenizer: Any, repeats: int = 1) -> tuple[dict[str, Any], list[EpisodeRecord]]:
    """`evaluate_auto_user` on fresh environments, in its own event loop (for scripts)."""
    envs = evaluation_envs(config, tokenizer)
    loop = asyncio.new_event_loop()
    try:
        generate = None if agent is None else agent.generate
        return loop.run_until_complete(evaluate_auto_user(generate, config, plan, name, envs, repeats))
    finally:
        for env in envs:
            loop.run_until_complete(env.aclose())
        loop.close()


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


def final_table(reports: dict[str, dict[str, Any]]) -> str:
    """A short plain-text table of the headline metrics, one column per model."""
    names = list(reports)
    width = max(len(label) for label, _ in FINAL_TABLE) + 2
    lines = ["".ljust(width) + "".join(n.rjust(12) for n in names)]
    for label, key in FINAL_TABLE:
        lines.append(label.ljust(width) + "".join(_fmt(reports[n].get(key)).rjust(12) for n in names))
    return "\n".join(lines)
