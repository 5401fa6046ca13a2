"""Expert iteration rounds of the warm start: the policy's own verified conversations become demonstrations.

ReST-EM / expert iteration (Havrilla et al. 2024; issue 22): after the supervised step, a round samples the
warm-started policy on TRAINING objectives through the real environment, as rollouts sample it, and keeps what the
demonstrations keep (``training.demonstrations``): a conversation the verifier scores a success, an infeasible
objective ended politely with nothing booked, or, for an attack persona, one that made the persona's move. Each user
turn of a kept conversation becomes a row in the demonstrations' schema (``ROW_COLUMNS``):

    prompt        the state string exactly as the policy saw it (the string its ``generate`` was called with)
    completion    the message the environment received
    demonstrator  ``policy round N``

The next supervised step fine-tunes a fresh adapter on the demonstrations plus every round's rows, as ReST-EM
fine-tunes from the base model each round (a round cannot drift on its own samples). ``training.warm_start_stage``
runs the rounds (``warm_start.expert_iteration_rounds``) and keeps each round's rows and policy in the run's output
directory.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from environment.objectives import Objective
from environment.personas import PERSONA_MOVES, persona_move_made
from training.build import build_environments
from training.evaluation import auto_user_config, ended_politely
from training.rollout import EpisodeRecord, GenerateFn, RolloutCollector, episode_plan

__all__ = ["ExpertIterationRound", "collect_round", "is_kept", "policy_rows", "sample_policy"]


@dataclass
class ExpertIterationRound:
    """What one round sampled and kept."""

    round_index: int
    rows: list[dict[str, Any]] = field(default_factory=list)
    played: int = 0
    kept: int = 0
    kept_per_kind: dict[str, int] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {"round": self.round_index, "episodes": self.played, "kept": self.kept, "rows": len(self.rows),
                "kept_per_kind": dict(sorted(self.kept_per_kind.items()))}


def is_kept(record: EpisodeRecord) -> bool:
    """Whether a sampled conversation is worth copying, by the demonstrations' rule (see the module docstring)."""
    outcome = record.outcome
    if outcome is None:
        return False
    if outcome.persona in PERSONA_MOVES:  # an attack persona: its move, exposing or not
        return persona_move_made(outcome.persona, outcome.attack_moves)
    if outcome.success:
        return True
    return not record.objective.feasible and ended_politely(record)


def policy_rows(records: list[EpisodeRecord], prompts: dict[int, str], round_index: int) -> list[dict[str, Any]]:
    """The rows of the kept conversations among ``records``; ``prompts`` maps ``id(query tensor)`` to the state
    string the policy was given for it."""
    rows = []
    for record in records:
        if not is_kept(record):
            continue
        outcome = record.outcome
        labels = ({"persona": outcome.persona, "move_made": persona_move_made(outcome.persona, outcome.attack_moves),
                   "exposed": outcome.hallucinated} if outcome.persona
                  else {"persona": "", "move_made": False, "exposed": False})
        for turn, (query, message) in enumerate(zip(record.queries, record.user_messages, strict=True), start=1):
            if not message.strip():  # an empty turn teaches nothing (and SFT refuses empty completions)
                continue
            rows.append({"prompt": prompts[id(query)], "completion": message,
                         "objective_id": record.objective.objective_id, "objective_kind": record.objective.kind,
                         "verifier_score": float(outcome.verifier_score), "demonstrator": f"policy round {round_index}",
                         "turn": turn, "episode_seed": record.episode_seed, **labels,
                         "situation": ""})  # the sampled states are strings here: not labelled, not repeated
    return rows


def sample_policy(config: Any, policy_dir: Path, objectives: list[Objective], episodes: int, seed: int,
                  round_index: int) -> ExpertIterationRound:
    """Play ``episodes`` conversations of the policy saved in ``policy_dir`` on ``objectives`` (drawn with ``seed``
    and the round), sampling as training's rollouts do, and keep the rows of the verified ones."""
    from agents.auto_user import AutoUserAgent

    agent = AutoUserAgent(dataclasses.replace(auto_user_config(config, str(policy_dir)),
                                              seed=_round_seed(seed, round_index)))
    agent.initialize_model()
    return collect_round(config, agent.generate, agent.tokenizer, objectives, episodes, seed, round_index)


def _round_seed(seed: int, round_index: int) -> int:
    return (seed * 1_000_003 + round_index) % 2**31


def collect_round(config: Any, generate: GenerateFn, tokenizer: Any, objectives: list[Objective], episodes: int,
                  seed: int, round_index: int) -> ExpertIterationRound:
    """One round with any ``generate`` (an auto-user's): ``episodes`` conversations on ``ppo.num_envs`` environments,
    objectives and episode seeds drawn with ``seed`` and the round; the kept conversations' rows."""
    if not objectives:
        raise ValueError("no training objectives to play")
    prompts: dict[int, str] = {}

    def remembering(states: list[str]) -> tuple[list[torch.Tensor], list[torch.Tensor], list[str]]:
        queries, responses, texts = generate(states)
        prompts.update({id(query): state for query, state in zip(queries, states, strict=True)})
        return queries, responses, texts

    plan = episode_plan(objectives, episodes, random.Random(_round_seed(seed, round_index)))
    envs = build_environments(config, tokenizer, first_worker=950)
    loop = asyncio.new_event_loop()
    try:
        records, _ = loop.run_until_complete(RolloutCollector(envs, remembering).collect(
            plan, description=f"expert iteration round {round_index}"))
    finally:
        for env in envs:
            loop.run_until_complete(env.aclose())
        loop.close()
    result = ExpertIterationRound(round_index, played=len(records))
    result.rows = policy_rows(records, prompts, round_index)
    for record in filter(is_kept, records):
        result.kept += 1
        result.kept_per_kind[record.objective.kind] = result.kept_per_kind.get(record.objective.kind, 0) + 1
    return result
