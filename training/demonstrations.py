"""Verified demonstrations for a supervised warm start before PPO (issue 22).

Reactive demonstrators (:mod:`environment.demonstrators`) talk to the configured booking agent through the real
environment, on TRAINING objectives only (the held-out split of :func:`environment.objectives.load_objectives` is
never played), and only conversations the environment's verifier scores a success are kept: a verified booking
that meets the objective, or, on an infeasible objective, a polite ending with nothing booked (the verifier's
``infeasible_no_booking_score`` and a turn that earned the ``polite_ending`` term). Every user turn of a kept
conversation becomes one row:

    prompt           the state string exactly as the policy sees it (``env.format_state()`` before the step, fitted
                     to the policy's tokenizer and ``model.max_query_length`` as in training unless ``--no-fit``)
    completion       the user message
    objective_id, objective_kind, verifier_score, demonstrator, turn (1-based, as "Turn: N" in the state)
    episode_seed     the seed ``env.reset`` got: replaying the completions from it reproduces every prompt
    persona, move_made, exposed
                     the episode's persona, whether it made the persona's move, whether it exposed a hallucination
                     ("", False, False in a cooperative run: one schema serves both)
    situation        what makes the turn rare (``environment.demonstrators.SITUATIONS``): "correction" (the agent
                     assumed a detail the goal does not have), "unusual_opening" (the first message on a goal with
                     such a detail), "persona_move" (the message that made the persona's move), or ""; the warm
                     start can repeat such rows (``warm_start.repeat_situations``)

With personas (``fuzzing.personas``, which ``mode: adversarial`` needs), each episode is played by a
:class:`~environment.persona_demonstrators.PersonaDemonstrator` of the persona the environment drew, and an
attack persona's episode is kept when the environment recorded the persona's move (``EpisodeOutcome.attack_moves``),
exposing or not (labelled), as the fuzzer should learn to make the move whatever the agent does; a ``relaxed``
episode is kept when verified, as above. The summary then reports, per persona, the episodes played and kept, the
persona fidelity (the share that made the move) and the share that exposed a hallucination.

saved as a ``datasets.Dataset`` with ``save_to_disk`` (TRL's SFTTrainer reads prompt/completion pairs). One JSON
line summarises the run::

    python -m training.demonstrations --config configs/ppo_training_config.yaml --episodes 200 --out demos/

Bad arguments are one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from environment.conversation import BookingConversationEnvironment, EnvironmentStep, EpisodeOutcome
from environment.demonstrators import DEMONSTRATOR_STYLES, ReactiveDemonstrator, turn_situation
from environment.objectives import Objective, load_objectives
from environment.persona_demonstrators import PersonaDemonstrator
from environment.personas import PERSONA_MOVES, persona_fidelity, persona_move_made
from training.cli import OneLineParser, fail
from training.config import ConfigError, TrainingConfig, load_config

ROW_COLUMNS = ("prompt", "completion", "objective_id", "objective_kind", "verifier_score", "demonstrator", "turn",
               "episode_seed", "persona", "move_made", "exposed", "situation")


@dataclass
class DemonstrationRun:
    """What :func:`collect_demonstrations` played and kept."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    played: Counter[str] = field(default_factory=Counter)  # episodes per objective kind
    kept: Counter[str] = field(default_factory=Counter)  # verified episodes per objective kind
    outcomes: list[EpisodeOutcome] = field(default_factory=list)  # every episode's, for the persona report
    kept_per_persona: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        summary = {"episodes": sum(self.played.values()), "kept": sum(self.kept.values()), "rows": len(self.rows),
                   "per_kind": {kind: {"played": self.played[kind], "kept": self.kept[kind]}
                                for kind in sorted(self.played)}}
        fidelity = persona_fidelity(self.outcomes)
        if fidelity:  # a persona run: played, kept, fidelity and exposing share per persona
            summary["per_persona"] = {persona: {"played": report["episodes"], "kept": self.kept_per_persona[persona],
                                                "fidelity": report["fidelity"], "exposing": report["exposing"]}
                                      for persona, report in fidelity.items()}
        return {**summary, "seconds": round(self.seconds, 2)}


def training_objectives(config: TrainingConfig) -> list[Objective]:
    """The run's training objectives, with any objective of the held-out side left out (by id)."""
    train, held_out = load_objectives(config.environment, config.evaluation.eval_objectives_file)
    held_out_ids = {objective.objective_id for objective in held_out}
    return [objective for objective in train if objective.objective_id not in held_out_ids]


def is_verified(objective: Objective, step: EnvironmentStep, infeasible_score: float) -> bool:
    """Whether a finished episode is a demonstration worth copying (see the module docstring)."""
    if "error" in step.info:
        return False
    if step.info["success"]:  # a verified booking, even one confirmed on the last turn the episode allows
        return True
    if step.truncated:
        return False
    verification = step.info["verification"]
    return (not objective.feasible and verification.booking is None and not verification.hallucinations
            and step.info["verifier_score"] == infeasible_score
            and step.info["reward_components"]["polite_ending"] > 0)


async def collect_demonstrations(config: TrainingConfig, objectives: list[Objective], episodes: int, seed: int,
                                 tokenizer: Any = None) -> DemonstrationRun:
    """Play ``episodes`` demonstrator conversations (objectives shuffled by ``seed`` and cycled, styles drawn) and
    keep the verified ones' user turns as rows (with personas, the ones that made the persona's move)."""
    if not objectives:
        raise ValueError("no training objectives to play")
    if config.mode == "adversarial" and not config.environment.personas:
        raise ValueError("fuzzing.personas: empty; mode adversarial plays persona demonstrations, so list the "
                         "personas (e.g. --set fuzzing.personas=[hurried,indecisive,bargain_hunter,flight_number])")
    env = BookingConversationEnvironment(config.environment, worker_id=900, tokenizer=tokenizer,
                                         max_state_tokens=config.model.max_query_length if tokenizer else None)
    rng = random.Random(seed)
    order = list(objectives)
    rng.shuffle(order)
    styles = sorted(DEMONSTRATOR_STYLES)
    run = DemonstrationRun()
    start = time.perf_counter()
    try:
        await env.tools.start()  # the MCP server subprocess, when the agent reaches the tools over MCP
        for index in range(episodes):
            objective = order[index % len(order)]
            episode_seed = rng.randrange(2**31)
            style = rng.choice(styles)
            persona = env.reset(objective=objective, seed=episode_seed).persona
            # The move by the turn before the last, so that the agent still answers it.
            demonstrator = (PersonaDemonstrator(env.today, persona.name, style, seed=episode_seed,
                                                deadline_turn=max(0, config.environment.max_conversation_length - 2))
                            if persona else ReactiveDemonstrator(env.today, style, seed=episode_seed))
            turns: list[tuple[str, str, int, str]] = []
            made = False  # the persona's move, read back after each step (PersonaDemonstrator.move_made)
            while True:
                prompt = env.format_state()
                message = demonstrator(env.state)
                turn, situation = env.state.turn + 1, turn_situation(env.state, env.today)
                step = await env.step(message)
                if persona is not None and not made and (made := demonstrator.move_made(env.state)):
                    situation = "persona_move"
                turns.append((prompt, message, turn, situation))
                if step.done or step.truncated:
                    break
            run.played[objective.kind] += 1
            outcome = step.outcome
            run.outcomes.append(outcome)
            move_made = persona_move_made(outcome.persona, outcome.attack_moves)
            if persona is not None and persona.name in PERSONA_MOVES:  # an attack persona: its move, exposing or not
                keep = move_made and "error" not in step.info
            else:
                keep = is_verified(objective, step, config.environment.verifier.infeasible_no_booking_score)
            if not keep:
                continue
            run.kept[objective.kind] += 1
            run.kept_per_persona[persona.name if persona else ""] += 1
            labels = {"persona": persona.name, "move_made": move_made, "exposed": outcome.hallucinated} if persona \
                else {"persona": "", "move_made": False, "exposed": False}
            run.rows += [{"prompt": prompt, "completion": message, "objective_id": objective.objective_id,
                          "objective_kind": objective.kind, "verifier_score": float(step.info["verifier_score"]),
                          "demonstrator": demonstrator.name, "turn": turn, "episode_seed": episode_seed, **labels,
                          "situation": situation}
                         for prompt, message, turn, situation in turns]
    finally:
        await env.aclose()
    run.seconds = time.perf_counter() - start
    return run


def save_rows(rows: list[dict[str, Any]], out: Path) -> None:
    """The rows as a ``datasets.Dataset`` saved to ``out`` (columns :data:`ROW_COLUMNS`, even with no rows)."""
    from datasets import Dataset, disable_progress_bars

    disable_progress_bars()  # the summary is the command's one line of output
    Dataset.from_dict({column: [row[column] for row in rows] for column in ROW_COLUMNS}).save_to_disk(str(out))


def _fail(message: str) -> NoReturn:
    fail("demonstrations", message)


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}")
    return number


def _policy_tokenizer(config: TrainingConfig) -> Any:
    """The policy's tokenizer (what training fits states with), or a one-line exit 2 when it cannot be loaded."""
    from agents.auto_user.models import load_tokenizer_checked, resolve_model

    try:
        return load_tokenizer_checked(resolve_model(config.model.base_model, config.model.model_cache_dir))
    except Exception as exc:  # ModelUnavailableError, ModelFileError, a hub id with no hub: one line either way
        _fail(f"model.base_model {config.model.base_model}: {str(exc).splitlines()[0] if str(exc) else exc!r}")


def main(argv: list[str] | None = None) -> None:
    parser = OneLineParser("demonstrations", description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="a training config (YAML)")
    parser.add_argument("--episodes", type=_positive, default=200, help="conversations to play")
    parser.add_argument("--out", required=True, help="directory to save the Dataset to")
    parser.add_argument("--seed", type=int, default=None, help="episode and style draws (default: config seed)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, as train_ppo.py --set")
    parser.add_argument("--no-fit", action="store_true",
                        help="keep full state strings (no policy tokenizer; states longer than "
                             "model.max_query_length are then not what the policy sees)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        _fail(f"--out: {out} is a file, not a directory")
    try:
        config = load_config(args.config, args.set)
    except ConfigError as exc:
        _fail(str(exc))
    if config.environment.state_template == "chat" and args.no_fit:
        _fail("--no-fit: environment.state_template chat renders states with the policy's tokenizer")
    tokenizer = None if args.no_fit else _policy_tokenizer(config)
    objectives = training_objectives(config)
    seed = config.seed if args.seed is None else args.seed
    try:
        run = asyncio.run(collect_demonstrations(config, objectives, args.episodes, seed, tokenizer))
    except ValueError as exc:
        _fail(str(exc))
    save_rows(run.rows, out)
    print(json.dumps({"out": str(out), **run.summary()}))


if __name__ == "__main__":
    main()
