"""Rollout collection: batched turns across environments, turn credit, and dropped error episodes."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest
import torch

from agents.booking import BookingAgentConfig, OpenAIAgentConfig
from environment.config import EnvironmentConfig
from environment.conversation import BookingConversationEnvironment
from environment.objectives import Objective, generate_objectives
from environment.scripted_users import happy_path
from training.credit import turn_scores
from training.rollout import RolloutCollector


def scripted_policy(scripts: dict[str, list[str]]):
    """A stand-in policy that answers each state with the next line of its objective's script."""
    calls: list[int] = []

    def generate(prompts: list[str]):
        calls.append(len(prompts))
        texts = []
        for prompt in prompts:
            objective_text = next(text for text in scripts if text in prompt)
            turn = int(prompt.split("Turn: ")[1].split(" ")[0]) - 1
            texts.append(scripts[objective_text][turn])
        tensors = [torch.tensor([1, 2, 3]) for _ in prompts]
        return tensors, [torch.tensor([4, 5]) for _ in prompts], texts

    return generate, calls


@pytest.fixture(scope="module")
def objectives(template_db: Path) -> list[Objective]:
    records = generate_objectives(template_db, 40, seed=3)
    return [Objective.from_dict(r) for r in records if r["feasible"]][:4]


def test_collector_batches_turns_across_environments(template_db, tmp_path, objectives) -> None:
    config = EnvironmentConfig(db_path=str(template_db), workdir=str(tmp_path), max_conversation_length=8)
    envs = [BookingConversationEnvironment(config, worker_id=i) for i in range(2)]
    generate, calls = scripted_policy({o.text: happy_path(o) for o in objectives})
    records, stats = asyncio.run(RolloutCollector(envs, generate).collect([(o, i) for i, o in enumerate(objectives)],
                                                                          progress=False))
    assert len(records) == 4 and stats.errors == 0
    assert all(record.outcome.success for record in records)
    assert max(calls) == 2  # two environments, one generation call per turn for both
    assert all(len(r.queries) == len(r.responses) == len(r.step_rewards) == 6 for r in records)
    assert all(all(r.state_complete) for r in records)
    for env in envs:
        asyncio.run(env.aclose())


def test_failing_agent_episodes_are_dropped_and_counted(template_db, tmp_path, objectives) -> None:
    with socket.socket() as probe:  # a port with nothing listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    agent = BookingAgentConfig(backend="openai", openai=OpenAIAgentConfig(
        base_url=f"http://127.0.0.1:{port}/v1", max_retries=0, timeout_seconds=2.0))
    config = EnvironmentConfig(db_path=str(template_db), workdir=str(tmp_path), agent=agent)
    envs = [BookingConversationEnvironment(config, worker_id=i) for i in range(2)]
    generate, _ = scripted_policy({o.text: happy_path(o) for o in objectives})
    records, stats = asyncio.run(RolloutCollector(envs, generate).collect([(o, i) for i, o in enumerate(objectives)],
                                                                          progress=False))
    assert records == [] and stats.errors == 4  # every episode errored, none crashed the collector
    for env in envs:
        asyncio.run(env.aclose())


def test_turn_scores_match_hand_computed_returns() -> None:
    assert turn_scores([0.1, 0.2, 0.3], 1.0, 0.5) == pytest.approx([0.525, 0.85, 1.3])
    assert turn_scores([0.0, 0.0], 0.8, 1.0) == pytest.approx([0.8, 0.8])
    assert turn_scores([], 1.0, 0.9) == []
